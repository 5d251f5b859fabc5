from urllib.parse import urlsplit

from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from keys.encryption import decrypt, encrypt


class UsageSource(models.TextChoices):
    PROVIDER = "provider", _("Reported by the provider")
    ESTIMATED = "estimated", _("Estimated with an offline tokenizer")
    MISSING = "missing", _("Unknown")


class UsageEvent(models.Model):
    """One relayed request. `request_id` is the idempotency key of the exactly-once ledger.

    Team, key, user and deployment are plain ids without database constraints: the ledger
    outlives the objects it mentions and bulk inserts stay cheap.
    """

    request_id = models.CharField(max_length=64)  # unique: Meta.constraints (no LIKE index to keep up on insert)
    # Indexed by the composite indexes below, which all lead with the organization.
    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_events", db_index=False)
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
    cache_write_tokens = models.PositiveIntegerField(default=0)  # part of prompt_tokens written to a cache (Anthropic)
    completion_tokens = models.PositiveIntegerField(default=0)
    usage_source = models.CharField(max_length=16, choices=UsageSource.choices, default=UsageSource.MISSING)
    attempts = models.PositiveSmallIntegerField(default=1)
    attempt_trail = models.JSONField(default=list, blank=True)  # [{"deployment", "status", "error", "ms", "at"}] per attempt
    latency_ms = models.PositiveIntegerField(default=0)
    ttft_ms = models.PositiveIntegerField(null=True, blank=True)
    # Cost in the price's currency, and converted to the org's display currency at `exchange_rate`.
    # Null means unpriced (no price known): shown and alerted as such, never counted as zero.
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    currency = models.CharField(max_length=3, blank=True)
    exchange_rate = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cost_display = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    price_id = models.BigIntegerField(null=True, blank=True)
    downgraded_from = models.CharField(max_length=120, blank=True)
    # What the relay corrected in the upstream's figures (relay.record.Record.usage), e.g. "negative:prompt".
    usage_flags = models.CharField(max_length=100, blank=True)
    # The credit account the relay held this request against (billing.credit_models), and whether its cost
    # has been drawn into the credit ledger yet (billing.credits.credit_usage_draw).
    credit_account_id = models.BigIntegerField(null=True, blank=True)
    credit_drawn = models.BooleanField(default=False)
    # The batch a request was a line of (batches.Batch.public_id); empty for live traffic.
    batch_id = models.CharField(max_length=40, blank=True)
    # Answered from the response cache (README "Response cache") or by a sandbox key's demo model
    # (README "Sandbox keys"): cost is 0 and `would_have_cost` holds what the request would have cost
    # relayed, in the display currency (the original answer's cost, for a hit). Also set on a downgrade:
    # the same usage at the downgraded-from model's price.
    cache_hit = models.BooleanField(default=False)
    sandbox = models.BooleanField(default=False)
    would_have_cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    search_units = models.PositiveIntegerField(default=0)  # rerank: search units billed (wire.adapters.rerank)
    created_at = models.DateTimeField(db_index=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["request_id"], name="usage_request_id_unique")]
        indexes = [
            models.Index(fields=["organization", "-created_at"], name="usage_org_time"),
            # The usage explorer's filters (billing/migrations/0005_usage_log_indexes.py)
            models.Index(fields=["organization", "key_id", "-created_at"], name="usage_org_key_time"),
            models.Index(fields=["organization", "model_name", "-created_at"], name="usage_org_model_time"),
            models.Index(fields=["organization", "team_id", "-created_at"], name="usage_org_team_time"),
            models.Index(fields=["organization", "user_id", "-created_at"], name="usage_org_user_time"),
            models.Index(fields=["organization", "-created_at"], condition=models.Q(status_code__gte=400), name="usage_org_errors_time"),
            # Usage not yet drawn into the credit ledger: a small set, drained every minute.
            models.Index(fields=["credit_account_id"], condition=models.Q(credit_account_id__isnull=False, credit_drawn=False), name="usage_credit_undrawn"),
            # Partial: live traffic's rows (no batch) never enter it, so inserts stay cheap.
            models.Index(fields=["organization", "batch_id"], condition=~models.Q(batch_id=""), name="usage_org_batch"),
        ]

    def __str__(self):
        return self.request_id


class UsageDeadLetter(models.Model):
    """A usage record the ledger could not take (billing.ledger): kept as it came, with the reason, for the
    operator. The rest of its batch was ingested; nothing is dropped silently."""

    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="usage_dead_letters")
    request_id = models.CharField(max_length=64, blank=True)
    stream_entry = models.CharField(max_length=40, blank=True)  # the Redis stream entry id (empty: written directly)
    reason = models.CharField(max_length=300)
    record = models.TextField()  # the record as JSON, cut at billing.ledger.DEAD_LETTER_MAX_CHARS
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.request_id or '?'}: {self.reason}"


class Price(models.Model):
    """A price book entry per provider and upstream model, per 1M tokens, in the provider's currency.

    Rows are never edited in place by the services: a change is a new row with a later
    `effective_from`, so past usage keeps the price it was charged at. `organization` null means
    the seeded global book; an organization's own row for the same model takes precedence.
    `tiers`: [{"above_prompt_tokens": 32000, "input": "…", "cached_input": "…", "cache_write": "…", "output": "…"}] — the
    highest tier below the request's prompt size prices the whole request. `windows`:
    [{"days": [0..6 Monday=0], "start": "HH:MM", "end": "HH:MM", "multiplier": "2"}] in `time_zone`.
    """

    organization = models.ForeignKey(Organization, null=True, blank=True, on_delete=models.CASCADE, related_name="prices")
    provider = models.CharField(_("provider"), max_length=32)
    upstream_model = models.CharField(_("upstream model"), max_length=200)
    currency = models.CharField(_("currency"), max_length=3)
    input_per_m = models.DecimalField(_("input per 1M"), max_digits=20, decimal_places=10)
    cached_input_per_m = models.DecimalField(_("cached input per 1M"), max_digits=20, decimal_places=10, null=True, blank=True)
    # Writing a prompt to the provider's cache (Anthropic: 1.25x input for the 5-minute cache); null: the input price.
    cache_write_per_m = models.DecimalField(_("cache write per 1M"), max_digits=20, decimal_places=10, null=True, blank=True)
    output_per_m = models.DecimalField(_("output per 1M"), max_digits=20, decimal_places=10)
    # Rerank priced per search unit (Cohere: a query with up to 100 documents), on top of any token price; null: none.
    per_search_unit = models.DecimalField(_("per search unit"), max_digits=20, decimal_places=10, null=True, blank=True)
    tiers = models.JSONField(default=list, blank=True)
    windows = models.JSONField(default=list, blank=True)
    time_zone = models.CharField(max_length=64, default="UTC")
    effective_from = models.DateTimeField(_("effective from"))
    source = models.CharField(_("source"), max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["provider", "upstream_model", "-effective_from"]
        indexes = [models.Index(fields=["provider", "upstream_model", "-effective_from"], name="price_lookup")]

    def __str__(self):
        return f"{self.provider}/{self.upstream_model} from {self.effective_from:%Y-%m-%d}"


class ExchangeRate(models.Model):
    """How much one unit of `currency` is worth in the organization's display currency."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="exchange_rates")
    currency = models.CharField(max_length=3)
    rate = models.DecimalField(max_digits=20, decimal_places=10)
    effective_from = models.DateTimeField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["currency", "-effective_from"]

    def __str__(self):
        return f"1 {self.currency} = {self.rate} {self.organization.currency}"


class UsageRollup(models.Model):
    """Usage summed per hour or day and per dimension; ids are 0 where a dimension is absent.

    Two coarser daily grains serve the overview, whose month would otherwise read a row per key ×
    model × deployment × day: by model alone (keys 0), and by key with its team and user (model "").
    """

    class Grain(models.TextChoices):
        HOUR = "hour", _("Hour")
        DAY = "day", _("Day")
        DAY_BY_MODEL = "dm", _("Day by model")
        DAY_BY_KEY = "dk", _("Day by key")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="usage_rollups")
    grain = models.CharField(max_length=4, choices=Grain.choices)
    bucket = models.DateTimeField()
    team_id = models.BigIntegerField(default=0)
    key_id = models.BigIntegerField(default=0)
    user_id = models.BigIntegerField(default=0)
    model_name = models.CharField(max_length=120)
    deployment_id = models.BigIntegerField(default=0)
    # chat, completions, embeddings, rerank, messages, …; "" in the by-key grain, and in buckets from before
    # endpoints were rolled up whose ledger rows were no longer all there to split (migration 0014).
    endpoint = models.CharField(max_length=32, default="", blank=True)
    requests = models.PositiveIntegerField(default=0)
    errors = models.PositiveIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cost = models.DecimalField(max_digits=24, decimal_places=10, default=0)  # in the org's display currency
    unpriced = models.PositiveIntegerField(default=0)
    latency_ms_sum = models.BigIntegerField(default=0)
    # The overview's savings (billing.selectors.savings): cache hits and what their original answers cost, sandbox
    # runs and what they would have cost, downgrades and the difference to the model asked for.
    cache_hits = models.PositiveIntegerField(default=0)
    cache_saved = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    sandbox_requests = models.PositiveIntegerField(default=0)
    sandbox_saved = models.DecimalField(max_digits=24, decimal_places=10, default=0)
    downgrades = models.PositiveIntegerField(default=0)
    downgrade_saved = models.DecimalField(max_digits=24, decimal_places=10, default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["organization", "grain", "bucket", "team_id", "key_id", "user_id", "model_name", "deployment_id", "endpoint"],
                name="rollup_unique_bucket",
            )
        ]
        indexes = [
            models.Index(fields=["organization", "grain", "bucket"], name="rollup_org_bucket"),
            models.Index(fields=["organization", "key_id", "grain", "bucket"], name="rollup_org_key_bucket"),  # a member's own keys
        ]

    def __str__(self):
        return f"{self.grain} {self.bucket:%Y-%m-%d %H:00} {self.model_name}"


def default_thresholds() -> list[int]:
    return [50, 80, 100]


class Budget(models.Model):
    class Scope(models.TextChoices):
        ORGANIZATION = "org", _("Organization")
        TEAM = "team", _("Team")
        KEY = "key", _("Virtual key")
        USER = "user", _("User")

    class Period(models.TextChoices):
        DAY = "day", _("Day")
        WEEK = "week", _("Week")
        MONTH = "month", _("Month")
        TOTAL = "total", _("Total")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="budgets")
    name = models.CharField(_("name"), max_length=120, blank=True)
    scope = models.CharField(_("scope"), max_length=8, choices=Scope.choices)
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    key = models.ForeignKey("keys.VirtualKey", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    user = models.ForeignKey("accounts.User", null=True, blank=True, on_delete=models.CASCADE, related_name="budgets")
    period = models.CharField(_("period"), max_length=8, choices=Period.choices, default=Period.MONTH)
    amount = models.DecimalField(_("amount"), max_digits=20, decimal_places=6)
    hard = models.BooleanField(_("hard limit"), default=True, help_text=_("Block requests past the amount; otherwise only alert."))
    # [] turns threshold alerts off; a budget created without thresholds gets these.
    thresholds = models.JSONField(_("alert thresholds (%)"), default=default_thresholds, blank=True)
    downgrade_model = models.CharField(_("downgrade to model"), max_length=120, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["scope", "name"]

    def __str__(self):
        return self.name or f"{self.get_scope_display()} {self.get_period_display()}"


class AlertChannel(models.Model):
    class Kind(models.TextChoices):
        EMAIL = "email", _("Email")
        WEBHOOK = "webhook", _("Webhook (signed)")
        FEISHU = "feishu", _("Feishu / Lark bot")
        DINGTALK = "dingtalk", _("DingTalk bot")
        WECOM = "wecom", _("WeCom bot")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alert_channels")
    name = models.CharField(_("name"), max_length=120)
    kind = models.CharField(_("kind"), max_length=16, choices=Kind.choices)
    target = models.TextField(_("emails or URL"))  # email addresses; empty for the URL kinds, whose URL is below
    # Webhook and bot URLs carry a token: stored encrypted like provider keys (keys.encryption), shown only as the hint.
    url_encrypted = models.TextField(blank=True)
    url_hint = models.CharField(max_length=300, blank=True)
    secret_encrypted = models.TextField(blank=True)
    previous_secret_encrypted = models.TextField(blank=True)
    enabled = models.BooleanField(default=True)
    disabled_reason = models.CharField(max_length=300, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    @property
    def has_url(self) -> bool:
        return self.kind != self.Kind.EMAIL

    def url(self) -> str:
        """The webhook or bot URL in full, for sending only (ValueError when the encryption key is gone)."""
        return decrypt(self.url_encrypted)

    def set_url(self, url: str) -> None:
        self.url_encrypted, self.url_hint = encrypt(url), url_hint(url)

    @property
    def destination(self) -> str:
        """What may be shown: email addresses in full, a URL as its hint."""
        return self.url_hint if self.has_url else self.target


def url_hint(url: str) -> str:
    """Scheme, host and port, then the URL's last 4 characters when the rest is long enough to keep them secret."""
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "…"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    rest = url.split(parts.netloc, 1)[-1] if parts.netloc else ""
    tail = rest[-4:] if len(rest) >= 16 else ""
    return f"{parts.scheme}://{netloc}/…{tail}"


class Alert(models.Model):
    """One event worth telling people about; `dedupe_key` makes each (budget, period, threshold) fire once."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alerts")
    kind = models.CharField(max_length=32)  # budget.threshold, budget.forecast, price.missing, rate.missing, test
    dedupe_key = models.CharField(max_length=200, unique=True)
    budget = models.ForeignKey(Budget, null=True, blank=True, on_delete=models.SET_NULL, related_name="alerts")
    payload = models.JSONField(default=dict)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.dedupe_key


class AlertDelivery(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending", _("Pending")
        SENT = "sent", _("Sent")
        RETRYING = "retrying", _("Retrying")
        FAILED = "failed", _("Failed")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="alert_deliveries")
    alert = models.ForeignKey(Alert, on_delete=models.CASCADE, related_name="deliveries")
    channel = models.ForeignKey(AlertChannel, on_delete=models.CASCADE, related_name="deliveries")
    message_id = models.CharField(max_length=64, unique=True)  # webhook-id: the same on every retry
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_error = models.CharField(max_length=300, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [models.UniqueConstraint(fields=["alert", "channel"], name="delivery_once_per_channel")]

    def __str__(self):
        return f"{self.alert} → {self.channel}"


from billing.credit_models import CreditAccount, CreditEntry, CreditPolicy, RedemptionCode  # noqa: E402,F401  (one models module per app)
