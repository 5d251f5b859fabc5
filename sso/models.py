from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization, Role
from sso import kinds


class SsoConnection(models.Model):
    """An organization's identity provider: who may sign in through it, and how they join."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="sso_connection")
    kind = models.CharField(_("provider"), max_length=16, choices=kinds.CHOICES)
    # Shown on the button ("Sign in with Okta"); empty: the kind's name.
    display_name = models.CharField(_("button name"), max_length=60, blank=True)
    client_id = models.CharField(_("client ID"), max_length=200)
    client_secret_encrypted = models.TextField(blank=True)
    client_secret_hint = models.CharField(max_length=8, blank=True)
    # OIDC only: the issuer; discovery is read from <issuer>/.well-known/openid-configuration.
    issuer_url = models.URLField(_("issuer URL"), max_length=500, blank=True)
    # WeCom only: the self-built application's AgentId.
    agent_id = models.CharField(_("agent ID"), max_length=40, blank=True)
    allowed_domains = models.JSONField(_("allowed email domains"), default=list, blank=True)
    default_role = models.CharField(_("default role"), max_length=16, choices=Role.choices, default=Role.MEMBER)
    auto_join = models.BooleanField(_("join on first sign-in"), default=True)
    require_sso = models.BooleanField(_("require single sign-on"), default=False)
    enabled = models.BooleanField(_("enabled"), default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return self.button_name

    @property
    def button_name(self) -> str:
        return self.display_name or str(dict(kinds.CHOICES)[self.kind])

    @property
    def provider_id(self) -> str:
        """allauth's id of this connection: namespaces accounts (and the OIDC callback URL) by organization."""
        return f"org-{self.organization.slug}"
