from django.conf import settings
from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone
from django.utils.translation import gettext, gettext_lazy as _

from accounts.models import Organization, Team
from wire.presets import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, PRESETS


def provider_choices() -> list[tuple[str, str]]:
    """The presets (wire.presets) with their labels in the active language. A callable: migrations keep a
    reference to it, so adding a preset needs no migration."""
    return [(preset.slug, gettext(preset.label)) for preset in PRESETS.values()]


class VirtualKey(models.Model):
    """A key handed to a developer or a team; Tollgate keeps only its keyed hash."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="virtual_keys")
    team = models.ForeignKey(Team, null=True, blank=True, on_delete=models.SET_NULL, related_name="virtual_keys")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="virtual_keys")
    name = models.CharField(_("name"), max_length=120)
    prefix = models.CharField(max_length=16, help_text=_("The first characters of the secret, to recognise it."))
    key_hash = models.CharField(max_length=64, unique=True)
    # After a rotation with a grace period the old secret keeps working until previous_valid_until.
    previous_key_hash = models.CharField(max_length=64, null=True, blank=True, unique=True)
    previous_valid_until = models.DateTimeField(null=True, blank=True)
    allowed_models = models.JSONField(_("allowed models"), default=list, blank=True, help_text=_("Empty means every model."))
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    rpm_limit = models.PositiveIntegerField(_("requests per minute"), null=True, blank=True)
    tpm_limit = models.PositiveIntegerField(_("tokens per minute"), null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # README "Sandbox keys": the demo model answers every request, priced as the model named would cost.
    sandbox = models.BooleanField(_("sandbox"), default=False, help_text=_("Answered by the local demo model at no cost; the ledger shows what it would have cost."))
    # README "Response cache": opt-in per key (or per model, below).
    response_cache = models.BooleanField(_("response cache"), default=False, help_text=_("Answer repeated identical requests from the cache, at no cost."))
    cache_any_temperature = models.BooleanField(_("cache at any temperature"), default=False, help_text=_("Also cache requests whose temperature is above 0 (or not given)."))
    cache_tool_calls = models.BooleanField(_("cache tool calls"), default=False, help_text=_("Also cache answers that call tools."))
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name} ({self.prefix}…)"

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > timezone.now())


class ProviderCredential(models.Model):
    """An upstream account: where to send requests and the (encrypted) key to send them with."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="provider_credentials")
    name = models.CharField(_("name"), max_length=120)
    provider = models.CharField(_("provider"), max_length=32, choices=provider_choices)
    base_url = models.URLField(_("base URL"), max_length=500, blank=True)
    api_version = models.CharField(_("API version"), max_length=40, blank=True, help_text=_("Azure only."))
    api_key_encrypted = models.TextField(blank=True)
    api_key_hint = models.CharField(max_length=16, blank=True, help_text=_("Last characters, for recognition."))
    extra_headers_encrypted = models.TextField(blank=True)
    connect_timeout = models.FloatField(_("connect timeout (s)"), default=DEFAULT_CONNECT_TIMEOUT, validators=[MinValueValidator(0.1)])
    read_timeout = models.FloatField(_("read timeout (s)"), default=DEFAULT_READ_TIMEOUT, validators=[MinValueValidator(0.1)])
    # Account balance, polled where the provider exposes it (keys.balances); null until first read.
    balance = models.DecimalField(_("balance"), max_digits=18, decimal_places=4, null=True, blank=True)
    balance_currency = models.CharField(_("balance currency"), max_length=8, blank=True)
    balance_checked_at = models.DateTimeField(_("balance checked at"), null=True, blank=True)
    balance_error = models.CharField(_("balance error"), max_length=300, blank=True)
    low_balance_threshold = models.DecimalField(
        _("low-balance alert below"), max_digits=18, decimal_places=4, null=True, blank=True, validators=[MinValueValidator(0)],
        help_text=_("Alert (once a day) when the polled balance falls below this amount. Empty: no alert."),
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="credential_unique_name_per_org")]

    def __str__(self):
        return self.name


class Model(models.Model):
    """The public model name callers use; its deployments say where it is served."""

    class Routing(models.TextChoices):
        WEIGHTED = "weighted", _("Weighted split per request")
        STICKY = "sticky", _("Weighted split, sticky per key")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="models")
    name = models.CharField(_("name"), max_length=120)
    description = models.CharField(_("description"), max_length=300, blank=True)
    routing = models.CharField(_("routing"), max_length=16, choices=Routing.choices, default=Routing.WEIGHTED)
    # Fallbacks and retries (relay.routing): tried in order when an attempt fails with a retryable error.
    fallback_models = models.JSONField(_("fallback models"), default=list, blank=True, help_text=_("Other model names to try after this model's own deployments."))
    retry_statuses = models.JSONField(_("retry on HTTP status"), default=list, blank=True, help_text=_("Empty: 408, 409, 429 and 5xx. Timeouts and connection errors always retry."))
    max_attempts = models.PositiveSmallIntegerField(_("max attempts"), default=3, validators=[MinValueValidator(1)])
    retries_per_deployment = models.PositiveSmallIntegerField(_("retries per deployment"), default=0)
    deadline_seconds = models.PositiveIntegerField(_("total deadline (s)"), default=300, validators=[MinValueValidator(1)])
    # After the first byte: an answer that trickles (or a stream that never ends) is stopped with an error.
    stream_deadline_seconds = models.PositiveIntegerField(_("stream deadline (s)"), default=600, validators=[MinValueValidator(1)])
    cooldown_failures = models.PositiveSmallIntegerField(_("failures before cooldown"), default=3, validators=[MinValueValidator(1)])
    cooldown_window_seconds = models.PositiveIntegerField(_("failure window (s)"), default=60, validators=[MinValueValidator(1)])
    cooldown_seconds = models.PositiveIntegerField(_("cooldown (s)"), default=30, validators=[MinValueValidator(1)])
    fallback_max_price_ratio = models.DecimalField(
        _("fallback price cap (x primary)"), max_digits=8, decimal_places=2, null=True, blank=True,
        help_text=_("Skip fallbacks dearer than this many times the primary's price."),
    )
    context_fallback = models.BooleanField(_("fall back on context-window errors"), default=True, help_text=_("Try a deployment with a larger context window."))
    # README "Response cache": opt-in per model (or per key, above).
    response_cache = models.BooleanField(_("response cache"), default=False, help_text=_("Answer repeated identical requests from the cache, at no cost."))
    cache_any_temperature = models.BooleanField(_("cache at any temperature"), default=False, help_text=_("Also cache requests whose temperature is above 0 (or not given)."))
    cache_tool_calls = models.BooleanField(_("cache tool calls"), default=False, help_text=_("Also cache answers that call tools."))
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="model_unique_name_per_org")]

    def __str__(self):
        return self.name


class Deployment(models.Model):
    """One place a Model is served: a credential and the upstream model name there."""

    class Probe(models.TextChoices):
        OFF = "off", _("Off")
        MODELS = "models", _("Model list (free)")
        CHAT = "chat", _("One-token chat call (may cost a little)")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="deployments")
    model = models.ForeignKey(Model, on_delete=models.CASCADE, related_name="deployments")
    credential = models.ForeignKey(ProviderCredential, on_delete=models.PROTECT, related_name="deployments")
    upstream_model = models.CharField(_("upstream model"), max_length=200)
    name = models.CharField(_("variant name"), max_length=120, blank=True)
    weight = models.PositiveIntegerField(_("weight"), default=1)
    order = models.PositiveIntegerField(_("fallback order"), default=0)
    context_window = models.PositiveIntegerField(_("context window (tokens)"), null=True, blank=True)
    # A scheduled health check (keys.probes), off by default: the chat kind is a paid call.
    probe = models.CharField(_("scheduled probe"), max_length=8, choices=Probe.choices, default=Probe.OFF)
    is_active = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["order", "id"]

    def __str__(self):
        return self.name or f"{self.credential.name}:{self.upstream_model}"


class DeploymentProbe(models.Model):
    """One result of a deployment's scheduled probe: its health history."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    deployment = models.ForeignKey(Deployment, on_delete=models.CASCADE, related_name="probes")
    kind = models.CharField(max_length=8)
    checked_at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    latency_ms = models.PositiveIntegerField(default=0)
    message = models.CharField(max_length=300, blank=True)

    class Meta:
        ordering = ["-checked_at"]
        indexes = [models.Index(fields=["deployment", "-checked_at"], name="deployment_probe_history")]
