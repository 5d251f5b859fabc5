"""Responses kept for OpenAI's Responses API (`store: true`), so a later request can continue from one
(`previous_response_id`), fetch it or delete it. Each belongs to one organization and lives for the
retention period (TOLLGATE_RESPONSES_RETENTION_DAYS)."""

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization


class StoredResponse(models.Model):
    id = models.CharField(primary_key=True, max_length=64)  # "resp_…", the id the client was given
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="stored_responses")
    key_id = models.BigIntegerField(_("virtual key"), null=True, blank=True)  # the key that made it (no FK: keys outlive nothing here)
    model_name = models.CharField(_("model"), max_length=120)
    response = models.JSONField(_("response"))  # the Response object as the client received it
    items = models.JSONField(_("conversation items"))  # every input item of this turn and the turns before it
    created_at = models.DateTimeField(_("created"))
    expires_at = models.DateTimeField(_("expires"), db_index=True)

    class Meta:
        verbose_name = _("stored response")
        verbose_name_plural = _("stored responses")
