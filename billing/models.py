from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization


class UsageSource(models.TextChoices):
    PROVIDER = "provider", _("Reported by the provider")
    ESTIMATED = "estimated", _("Estimated with an offline tokenizer")
    MISSING = "missing", _("Unknown")


class UsageEvent(models.Model):
    """One relayed request. `request_id` is the idempotency key of the exactly-once ledger.

    Team, key, user and deployment are plain ids without database constraints: the ledger
    outlives the objects it mentions and bulk inserts stay cheap.
    """

    request_id = models.CharField(max_length=64, unique=True)
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_events")
    team_id = models.BigIntegerField(null=True, blank=True)
    key_id = models.BigIntegerField(null=True, blank=True)
    user_id = models.BigIntegerField(null=True, blank=True)
    model_name = models.CharField(max_length=120)
    deployment_id = models.BigIntegerField(null=True, blank=True)
    provider = models.CharField(max_length=32, blank=True)
    upstream_model = models.CharField(max_length=200, blank=True)
    endpoint = models.CharField(max_length=32)
    stream = models.BooleanField(default=False)
    status_code = models.PositiveSmallIntegerField()
    error_type = models.CharField(max_length=64, blank=True)
    prompt_tokens = models.PositiveIntegerField(default=0)
    cached_tokens = models.PositiveIntegerField(default=0)
    completion_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.MISSING)
    attempts = models.PositiveSmallIntegerField(default=1)
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="usage_org_time")]

    def __str__(self):
        return self.request_id
