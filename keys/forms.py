"""Dashboard forms for keys, provider credentials, models and deployments.

They check the shape of input only; the rules live in keys.services. Choices (teams, users,
models, credentials) are always limited to the current organization.
"""

import json
from datetime import timedelta

from django import forms
from django.db.models import Q
from django.utils import timezone
from django.utils.text import capfirst, format_lazy
from django.utils.translation import gettext_lazy as _

from accounts.models import Team, User
from accounts.permissions import Perm
from keys.models import Deployment, Model, ProviderCredential, provider_choices
from keys.services import CACHE_FLAGS, KEY_FLAGS
from wire.presets import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, PRESETS

MAX_LIMIT = 2_147_483_647  # PositiveIntegerField's ceiling on every database
MAX_WEIGHT = 1_000_000
GRACE_CHOICES = [
    (0, _("None: the old secret stops working now")),
    (3600, _("1 hour")),
    (86400, _("1 day")),
    (7 * 86400, _("7 days")),
    (30 * 86400, _("30 days")),
]


class DateTimeLocalInput(forms.DateTimeInput):
    input_type = "datetime-local"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%dT%H:%M")


# --- Virtual keys ---------------------------------------------------------------------------------------


class KeyFilterForm(forms.Form):
    """The list filters (GET). Invalid values are reported and ignored, never a 500."""

    STATUS_CHOICES = [("", _("Any status")), ("active", _("Active")), ("revoked", _("Revoked")), ("expired", _("Expired"))]

    q = forms.CharField(label=_("Search"), required=False, max_length=120, widget=forms.TextInput(attrs={"type": "search", "placeholder": _("Name or prefix")}))
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("Any team"))
    user = forms.ModelChoiceField(label=_("User"), queryset=User.objects.none(), required=False, empty_label=_("Anyone"))
    status = forms.ChoiceField(label=_("Status"), choices=STATUS_CHOICES, required=False)

    def __init__(self, *args, org_context, **kwargs):
        kwargs.setdefault("auto_id", "filter_%s")  # the create form on the same page has a team and user too
        super().__init__(*args, **kwargs)
        org = org_context.organization
        self.fields["team"].queryset = Team.objects.filter(organization=org)
        if org_context.can(Perm.MANAGE_KEYS):
            self.fields["user"].queryset = User.objects.filter(memberships__organization=org).order_by("email")
        else:
            del self.fields["user"]  # a member only ever sees their own keys

    def filter(self, keys):
        if not self.is_bound:
            return keys
        self.is_valid()
        data = self.cleaned_data  # only the fields that passed
        if data.get("team"):
            keys = keys.filter(team=data["team"])
        if data.get("user"):
            keys = keys.filter(user=data["user"])
        now = timezone.now()
        status = data.get("status")
        if status == "active":
            keys = keys.filter(Q(expires_at__isnull=True) | Q(expires_at__gt=now), revoked_at__isnull=True)
        elif status == "revoked":
            keys = keys.filter(revoked_at__isnull=False)
        elif status == "expired":
            keys = keys.filter(revoked_at__isnull=True, expires_at__lte=now)
        if data.get("q"):
            keys = keys.filter(Q(name__icontains=data["q"]) | Q(prefix__startswith=data["q"]))
        return keys


class _KeyFieldsForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    allowed_models = forms.MultipleChoiceField(
        label=_("Allowed models"), required=False, widget=forms.CheckboxSelectMultiple,
        help_text=_("None ticked: every model of the organization."),
    )
    expires_at = forms.DateTimeField(label=_("Expires at"), required=False, widget=DateTimeLocalInput())
    rpm_limit = forms.IntegerField(
        label=_("Requests per minute"), required=False, min_value=1, max_value=MAX_LIMIT, help_text=_("Empty: no limit."),
    )
    tpm_limit = forms.IntegerField(
        label=_("Tokens per minute"), required=False, min_value=1, max_value=MAX_LIMIT, help_text=_("Empty: no limit."),
    )
    # README "Sandbox keys" and "Response cache"
    sandbox = forms.BooleanField(
        label=_("Sandbox key"), required=False,
        help_text=_("Every request is answered by the local demo model at no cost; the usage log shows what it would have cost."),
    )
    response_cache = forms.BooleanField(
        label=_("Response cache"), required=False,
        help_text=_("Repeated identical requests at temperature 0 (and embeddings) are answered from the cache, at no cost."),
    )
    cache_any_temperature = forms.BooleanField(label=_("Cache at any temperature"), required=False, help_text=_("Also cache requests whose temperature is above 0 or not given."))
    cache_tool_calls = forms.BooleanField(label=_("Cache tool calls"), required=False, help_text=_("Also cache answers that call tools."))

    def __init__(self, *args, org_context, **kwargs):
        super().__init__(*args, **kwargs)
        self.org_context = org_context
        names = Model.objects.filter(organization=org_context.organization).order_by("name").values_list("name", flat=True)
        self.fields["allowed_models"].choices = [(name, name) for name in names]
        self.fields["expires_at"].help_text = _("In %(tz)s. Empty: never expires.") % {"tz": org_context.organization.time_zone}

    def clean_expires_at(self):
        value = self.cleaned_data["expires_at"]
        # An already past expiry may stay as it is when other fields are edited; a new one must be ahead.
        # The input has minutes only, so the stored value is compared to the minute.
        current = self.initial.get("expires_at")
        unchanged = current is not None and value is not None and value == current.replace(second=0, microsecond=0)
        if unchanged:
            return current
        if value is not None and value <= timezone.now():
            raise forms.ValidationError(_("The expiry must be in the future."))
        return value


class KeyCreateForm(_KeyFieldsForm):
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("No team"))
    user = forms.ModelChoiceField(
        label=_("User"), queryset=User.objects.none(), required=False, empty_label=_("Nobody (a service key)"),
        help_text=_("Whose key this is: their usage and budgets count it."),
    )
    field_order = ["name", "team", "user", "allowed_models", "expires_at", "rpm_limit", "tpm_limit", "sandbox", "response_cache", "cache_any_temperature", "cache_tool_calls"]

    def __init__(self, *args, org_context, **kwargs):
        super().__init__(*args, org_context=org_context, **kwargs)
        org = org_context.organization
        teams = Team.objects.filter(organization=org)
        if org_context.can(Perm.MANAGE_KEYS):
            self.fields["team"].queryset = teams
            self.fields["user"].queryset = User.objects.filter(memberships__organization=org).order_by("email")
            self.initial.setdefault("user", getattr(org_context.user, "pk", None))
        else:
            self.fields["team"].queryset = teams.filter(memberships__user=org_context.user)
            del self.fields["user"]  # members create keys for themselves only

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        data.setdefault("user", None)
        return data


class KeyUpdateForm(_KeyFieldsForm):
    @classmethod
    def for_key(cls, key, *, org_context, data=None):
        initial = {
            "name": key.name, "allowed_models": list(key.allowed_models or []), "expires_at": key.expires_at,
            "rpm_limit": key.rpm_limit, "tpm_limit": key.tpm_limit,
            **{flag: getattr(key, flag) for flag in KEY_FLAGS},
        }
        return cls(data, initial=initial, org_context=org_context, prefix="edit")


class KeyRotateForm(forms.Form):
    grace_seconds = forms.TypedChoiceField(
        label=_("Old secret keeps working for"), choices=GRACE_CHOICES, coerce=int, initial=0,
        help_text=_("A grace period lets running services switch to the new secret without downtime."),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "rotate")
        super().__init__(*args, **kwargs)


# --- Provider credentials -----------------------------------------------------------------------------


class PresetSelect(forms.Select):
    """The provider choice; each option carries its preset's default base URL and wire format for keys.js."""

    def create_option(self, name, value, label, selected, index, subindex=None, attrs=None):
        option = super().create_option(name, value, label, selected, index, subindex=subindex, attrs=attrs)
        preset = PRESETS.get(value)
        if preset is not None:
            option["attrs"]["data-base-url"] = preset.base_url
            option["attrs"]["data-wire"] = preset.wire
        return option


class WriteOnlyTextarea(forms.Textarea):
    """Like PasswordInput(render_value=False): a refused form never echoes what was typed (header values are secrets)."""

    def format_value(self, value):
        return None


class WriteOnlyInput(forms.TextInput):
    """A text input that never echoes what was typed (a webhook or bot URL carries a token)."""

    def format_value(self, value):
        return None


class ReenterSecretsMixin:
    """A form shown again after an error keeps what was typed, except its secrets: their widgets never
    send a value back to the browser, so each secret that was typed gets a note to re-enter it.

    `secret_notes()` maps the secret fields to their note; the note is added by `add_error`, so it
    appears for the form's own errors and for a service's refusal alike.
    """

    def secret_notes(self) -> dict:
        return {}

    def add_error(self, field, error):
        super().add_error(field, error)
        for name, note in self.secret_notes().items():
            if name in self.fields and str(self.data.get(self.add_prefix(name)) or "").strip() and note not in self._errors.get(name, ()):
                super().add_error(name, forms.ValidationError(note, code="reenter"))


REENTER_API_KEY = _("Re-enter the API key: it is never sent back to the browser.")
REENTER_HEADERS = _("Re-enter the extra headers: their values are never sent back to the browser.")


def _headers_field():
    return forms.CharField(
        label=_("Extra headers (JSON)"), required=False, max_length=20_000,
        widget=WriteOnlyTextarea(attrs={"rows": 3, "placeholder": '{"X-Org-Id": "…"}', "spellcheck": "false", "data-wire-hide": "mock"}),
    )


def _parse_headers(text: str):
    """JSON object text to a dict of strings; None when the field was left empty."""
    text = (text or "").strip()
    if not text:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        raise forms.ValidationError(_("This is not valid JSON.")) from None
    if not isinstance(value, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
        raise forms.ValidationError(_('Use a JSON object of header names to string values, e.g. {"X-Team": "ml"}.'))
    return value


class _CredentialFieldsForm(ReenterSecretsMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    base_url = forms.CharField(
        label=_("Base URL"), required=False, max_length=500,
        widget=forms.URLInput(attrs={"data-base-url-input": "", "data-placeholder-required": _("Required for this provider")}),
        help_text=_("Empty: the provider's default. HTTPS to a public address."),
    )
    api_key = forms.CharField(
        label=_("API key"), required=False, strip=False, max_length=4000,
        widget=forms.PasswordInput(attrs={"autocomplete": "off", "data-wire-hide": "mock"}, render_value=False),
    )
    api_version = forms.CharField(
        label=_("API version"), required=False, max_length=40, help_text=_("Azure OpenAI only."),
        widget=forms.TextInput(attrs={"data-wire-show": "azure"}),
    )
    extra_headers = _headers_field()
    connect_timeout = forms.FloatField(label=_("Connect timeout (s)"), min_value=0.1, max_value=600, initial=DEFAULT_CONNECT_TIMEOUT)
    read_timeout = forms.FloatField(label=_("Read timeout (s)"), min_value=0.1, max_value=3600, initial=DEFAULT_READ_TIMEOUT)
    low_balance_threshold = forms.DecimalField(
        label=_("Low-balance alert below"), required=False, min_value=0, max_digits=18, decimal_places=4,
        help_text=_("DeepSeek and Moonshot/Kimi: alert once a day when the hourly polled balance is below this amount. Empty: no alert."),
    )

    def secret_notes(self) -> dict:
        return {"api_key": REENTER_API_KEY, "extra_headers": REENTER_HEADERS}

    def clean_api_key(self):
        key = self.cleaned_data["api_key"]
        if any(c in key for c in "\r\n\x00"):
            raise forms.ValidationError(_("The key may not contain line breaks."))
        return key

    def clean_base_url(self):
        return self.cleaned_data["base_url"].strip()


class CredentialCreateForm(_CredentialFieldsForm):
    provider = forms.ChoiceField(
        label=_("Provider"), choices=provider_choices, widget=PresetSelect(attrs={"data-preset-select": ""}),
        help_text=_('"Demo" answers locally without internet or key: for trying Tollgate out, not for real work.'),
    )
    field_order = ["provider", "name", "base_url", "api_key", "api_version", "extra_headers", "connect_timeout", "read_timeout"]

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["api_key"].help_text = _("Stored encrypted and never shown again. Not needed for the demo provider.")
        self.fields["extra_headers"].help_text = _("Optional, sent with every request. Stored encrypted.")

    def clean_extra_headers(self):
        return _parse_headers(self.cleaned_data["extra_headers"])

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        if data["extra_headers"] is None:
            del data["extra_headers"]
        return data


class CredentialUpdateForm(_CredentialFieldsForm):
    """The key and headers are write-only: empty keeps the stored value."""

    def __init__(self, *args, credential: ProviderCredential, header_names=(), **kwargs):
        super().__init__(*args, **kwargs)
        self.credential = credential
        self.fields["api_key"].help_text = _("Leave blank to keep the stored key (%(hint)s).") % {
            "hint": f"…{credential.api_key_hint}" if credential.api_key_hint else "…"
        } if credential.api_key_encrypted else _("Leave blank to keep it empty.")
        names = ", ".join(header_names) if header_names else _("none")
        self.fields["extra_headers"].help_text = _(
            "Leave blank to keep the stored headers (currently: %(names)s); {} removes them all."
        ) % {"names": names}
        preset = PRESETS.get(credential.provider)
        if preset is not None:
            self.fields["base_url"].widget.attrs["placeholder"] = preset.base_url or _("Required for this provider")
            if preset.wire == "mock":
                for field in ("api_key", "extra_headers"):
                    del self.fields[field]
            if preset.wire != "azure":
                del self.fields["api_version"]

    @classmethod
    def for_credential(cls, credential, *, header_names=(), data=None):
        initial = {
            "name": credential.name, "base_url": credential.base_url, "api_version": credential.api_version,
            "connect_timeout": credential.connect_timeout, "read_timeout": credential.read_timeout,
            "low_balance_threshold": credential.low_balance_threshold,
        }
        return cls(data, initial=initial, credential=credential, header_names=header_names)

    def clean_extra_headers(self):
        text = (self.cleaned_data["extra_headers"] or "").strip()
        if not text:
            return None
        return _parse_headers(text) or {}

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        if data.get("extra_headers") is None:
            data.pop("extra_headers", None)
        if not data.get("api_key"):
            data.pop("api_key", None)
        return data


class CredentialTestForm(forms.Form):
    upstream_model = forms.CharField(label=_("Model at the provider"), max_length=200)


# --- Models and deployments ---------------------------------------------------------------------------


class ModelCreateForm(forms.Form):
    name = forms.CharField(
        label=_("Name"), max_length=120, help_text=_("What callers send as “model”, e.g. gpt-4o-mini or chat-default."),
    )
    description = forms.CharField(label=_("Description"), max_length=300, required=False)
    routing = forms.ChoiceField(label=_("Routing"), choices=Model.Routing.choices, initial=Model.Routing.WEIGHTED)


def _default(field: str):
    return Model._meta.get_field(field).default


def _comma_list(text: str) -> list[str]:
    return [part.strip() for part in (text or "").replace("\n", ",").split(",") if part.strip()]


def _policy_number(field: str, help_text):
    """A whole-number policy field; empty means the model default. Ranges are checked by keys.services."""
    return forms.IntegerField(
        label=capfirst(Model._meta.get_field(field).verbose_name), required=False,
        help_text=format_lazy("{} {}", help_text, format_lazy(_("Empty: {}."), _default(field))),
    )


class ModelUpdateForm(forms.Form):
    """The model's description and status, and its routing policy (the "Routing and fallbacks" section).

    A full form: an empty number field restores that field's default, an unticked box is off.
    """

    POLICY_FIELDS = [
        "routing", "fallback_models", "retry_statuses", "max_attempts", "retries_per_deployment", "deadline_seconds",
        "stream_deadline_seconds", "cooldown_failures", "cooldown_window_seconds", "cooldown_seconds", "fallback_max_price_ratio", "context_fallback",
    ]
    NUMBER_FIELDS = ["max_attempts", "retries_per_deployment", "deadline_seconds", "stream_deadline_seconds", "cooldown_failures", "cooldown_window_seconds", "cooldown_seconds"]

    description = forms.CharField(label=_("Description"), max_length=300, required=False)
    is_active = forms.BooleanField(label=_("Active"), required=False, help_text=_("An inactive model is refused by the gateway."))
    routing = forms.ChoiceField(
        label=_("Routing"), choices=Model.Routing.choices,
        help_text=_("Per request: each request is split by weight. Sticky: the same key always gets the same deployment."),
    )
    fallback_models = forms.CharField(
        label=_("Fallback models"), required=False, max_length=2000,
        help_text=_("Other model names, separated by commas, tried in this order after this model's own deployments fail."),
    )
    retry_statuses = forms.CharField(
        label=_("Retry on HTTP status"), required=False, max_length=500,
        help_text=_("Status codes separated by commas, e.g. 429, 500, 503. Empty: 408, 409, 429 and 5xx. Timeouts and connection errors always retry."),
    )
    max_attempts = _policy_number("max_attempts", _("Attempts per request, across all deployments and fallbacks; each one is recorded."))
    retries_per_deployment = _policy_number("retries_per_deployment", _("Extra tries on the same deployment before moving on, with backoff."))
    deadline_seconds = _policy_number("deadline_seconds", _("The whole request, retries included, stops after this many seconds."))
    stream_deadline_seconds = _policy_number("stream_deadline_seconds", _("Once the upstream has started answering, a stream (or a whole answer) is stopped with an error after this many seconds."))
    cooldown_failures = _policy_number("cooldown_failures", _("Failures within the window that put a deployment in cooldown."))
    cooldown_window_seconds = _policy_number("cooldown_window_seconds", _("The window in which failures are counted, in seconds."))
    cooldown_seconds = _policy_number("cooldown_seconds", _("How long a failing deployment is skipped, in seconds, before it is tried again."))
    fallback_max_price_ratio = forms.DecimalField(
        label=_("Fallback price cap (× primary)"), required=False, max_digits=8, decimal_places=2,
        help_text=_("Skip fallbacks dearer than this many times the primary's price. Empty: no cap."),
    )
    context_fallback = forms.BooleanField(
        label=_("Fall back on context-window errors"), required=False,
        help_text=_("When a prompt is too long, try a deployment with a larger context window."),
    )
    response_cache = forms.BooleanField(
        label=_("Response cache"), required=False,
        help_text=_("For every key: repeated identical requests at temperature 0 (and embeddings) are answered from the cache, at no cost."),
    )
    cache_any_temperature = forms.BooleanField(label=_("Cache at any temperature"), required=False, help_text=_("Also cache requests whose temperature is above 0 or not given."))
    cache_tool_calls = forms.BooleanField(label=_("Cache tool calls"), required=False, help_text=_("Also cache answers that call tools."))

    def __init__(self, *args, model: Model, **kwargs):
        super().__init__(*args, **kwargs)
        self.model = model
        others = Model.objects.filter(organization_id=model.organization_id).exclude(pk=model.pk).order_by("name")
        self.other_models = list(others.values_list("name", flat=True))
        self.fields["fallback_models"].widget.attrs.update({"autocomplete": "off", "spellcheck": "false", "data-fallback-input": ""})

    @classmethod
    def for_model(cls, model, data=None):
        initial = {field: getattr(model, field) for field in ["description", "is_active", *cls.POLICY_FIELDS, *CACHE_FLAGS]}
        initial["fallback_models"] = ", ".join(model.fallback_models or [])
        initial["retry_statuses"] = ", ".join(str(code) for code in model.retry_statuses or [])
        return cls(data, initial=initial, model=model)

    def general_fields(self):
        return [self[name] for name in ("description", "is_active")]

    def policy_fields(self):
        return [self[name] for name in self.POLICY_FIELDS]

    def cache_fields(self):
        return [self[name] for name in CACHE_FLAGS]

    def clean_fallback_models(self):
        return _comma_list(self.cleaned_data["fallback_models"])

    def clean_retry_statuses(self):
        codes = []
        for part in _comma_list(self.cleaned_data["retry_statuses"]):
            if not part.isdigit():
                raise forms.ValidationError(_("“%(value)s” is not a status code; use whole numbers separated by commas."), params={"value": part})
            codes.append(int(part))
        return codes

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        for field in self.NUMBER_FIELDS:
            if data[field] is None:
                data[field] = _default(field)
        return data


class DeploymentForm(forms.Form):
    credential = forms.ModelChoiceField(label=_("Credential"), queryset=ProviderCredential.objects.none())
    upstream_model = forms.CharField(label=_("Model at the provider"), max_length=200)
    name = forms.CharField(label=_("Variant name"), max_length=120, required=False, help_text=_("Optional, for reports."))
    weight = forms.IntegerField(
        label=_("Weight"), min_value=0, max_value=MAX_WEIGHT, initial=1,
        help_text=_("Share of traffic relative to the other deployments; 0 serves only as a fallback."),
    )
    order = forms.IntegerField(label=_("Fallback order"), min_value=0, max_value=MAX_WEIGHT, initial=0, help_text=_("Lowest first."))
    context_window = forms.IntegerField(
        label=_("Context window (tokens)"), required=False, min_value=1, max_value=MAX_LIMIT,
        help_text=_("Optional. On a context-window error the model may fall back to a deployment with a larger window."),
    )

    def __init__(self, *args, organization, with_active=False, credentials=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["credential"].queryset = ProviderCredential.objects.filter(organization=organization)
        if credentials is not None:
            # One query for a page with a form per model; input is still checked against the queryset.
            field = self.fields["credential"]
            field.choices = [("", field.empty_label), *((c.pk, field.label_from_instance(c)) for c in credentials)]
        if with_active:
            self.fields["is_active"] = forms.BooleanField(label=_("Active"), required=False)
            self.fields["probe"] = forms.ChoiceField(
                label=_("Scheduled probe"), choices=Deployment.Probe.choices, initial=Deployment.Probe.OFF, required=False,
                help_text=_("Every 5 minutes: read the provider's model list (free) or send a one-token call (paid). Off by default."),
            )

    def clean_upstream_model(self):
        value = self.cleaned_data["upstream_model"].strip()
        if any(c in value for c in "\x00\r\n"):
            raise forms.ValidationError(_("Use a name without line breaks."))
        return value

    def clean_probe(self):
        return self.cleaned_data.get("probe") or None  # not posted: unchanged

    @classmethod
    def for_deployment(cls, deployment: Deployment, data=None):
        initial = {
            "credential": deployment.credential_id, "upstream_model": deployment.upstream_model, "name": deployment.name,
            "weight": deployment.weight, "order": deployment.order, "context_window": deployment.context_window,
            "is_active": deployment.is_active, "probe": deployment.probe,
        }
        return cls(data, initial=initial, organization=deployment.organization, with_active=True)


# --- The A/B comparison report ----------------------------------------------------------------------


class ReportRangeForm(forms.Form):
    """The report's time range (GET): a preset, or a custom range read in the organization's time zone."""

    PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30)}
    RANGE_CHOICES = [("24h", _("Last 24 hours")), ("7d", _("Last 7 days")), ("30d", _("Last 30 days")), ("custom", _("Custom range"))]
    DEFAULT = "7d"
    MAX_SPAN = timedelta(days=366)

    range = forms.ChoiceField(label=_("Time range"), choices=RANGE_CHOICES, initial=DEFAULT, widget=forms.Select(attrs={"data-range-select": ""}))
    since = forms.DateTimeField(label=_("From"), required=False, widget=DateTimeLocalInput(attrs={"data-custom-range": ""}))
    until = forms.DateTimeField(
        label=_("Until"), required=False, widget=DateTimeLocalInput(attrs={"data-custom-range": ""}),
        help_text=_("Empty: now."),
    )

    def __init__(self, data=None, *, time_zone: str, **kwargs):
        if data is not None and not data.get("range"):
            # A start alone (a hand-made link) means a custom range; the select must then say so.
            data = data.copy()
            data["range"] = "custom" if data.get("since") else self.DEFAULT
        kwargs.setdefault("auto_id", "report_%s")
        super().__init__(data, **kwargs)
        self.fields["since"].help_text = _("For a custom range, in %(tz)s.") % {"tz": time_zone}

    def clean(self):
        cleaned = super().clean()
        choice = cleaned.get("range")
        if not choice:  # an unknown choice, reported on the field
            return cleaned
        now = timezone.now()
        if choice != "custom":
            cleaned["until"] = now
            cleaned["since"] = now - self.PRESETS[choice]
            return cleaned
        since, until = cleaned.get("since"), cleaned.get("until") or now
        if "since" in self.errors or "until" in self.errors:
            return cleaned
        if since is None:
            self.add_error("since", _("A custom range needs a start."))
        elif since >= until:
            self.add_error("since", _("The start must be before the end."))
        elif until - since > self.MAX_SPAN:
            self.add_error("since", _("A range can cover at most 366 days."))
        cleaned["until"] = until
        return cleaned

    def bounds(self) -> tuple:
        """(since, until) of a valid form; the default range when nothing was asked."""
        if not self.is_bound:
            now = timezone.now()
            return now - self.PRESETS[self.DEFAULT], now
        return self.cleaned_data["since"], self.cleaned_data["until"]
