"""Dashboard forms for usage, budgets, alert channels and the cost estimator.

They check the shape of input only; the rules live in billing.services, billing.alerts and
billing.estimator. Choices (teams, keys, users, models) are always limited to the current organization.
"""

import re
import zoneinfo
from datetime import datetime, time, timedelta

from django import forms
from django.forms.utils import flatatt
from django.utils.html import format_html, format_html_join
from django.utils.safestring import mark_safe
from django.utils.translation import gettext_lazy as _

from accounts.models import Team, User
from accounts.permissions import Perm
from billing import estimator
from billing.models import AlertChannel, Budget
from billing.selectors import STATUS_FILTERS
from keys.forms import ReenterSecretsMixin, WriteOnlyInput
from keys.models import Model, VirtualKey

MAX_RANGE_DAYS = 400
RANGES = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}


class DateInput(forms.DateInput):
    input_type = "date"

    def __init__(self, attrs=None):
        super().__init__(attrs, format="%Y-%m-%d")


def _model_names(organization) -> list[str]:
    return list(Model.objects.filter(organization=organization).order_by("name").values_list("name", flat=True))


# --- Usage explorer -------------------------------------------------------------------------------------


class ListSelect(forms.Select):
    """A <select> whose options are written in Python rather than through a template each: the explorer lists every
    key of the organization, and at 200 keys the per-option templates took ~75 ms of a 110 ms page (measured)."""

    def render(self, name, value, attrs=None, renderer=None):
        final = {**self.build_attrs(self.attrs, attrs), "name": name}
        chosen = set(self.format_value(value))
        options = format_html_join(
            "", '<option value="{}"{}>{}</option>',
            ((option, mark_safe(" selected") if option in chosen else "", label)
             for option, label in (("" if v is None else str(v), label) for v, label in self.choices)),
        )
        return format_html("<select{}>{}</select>", flatatt(final), options)


class UsageFilterForm(forms.Form):
    """The explorer's filters (GET). Invalid values are reported and ignored, never a 500."""

    RANGE_CHOICES = [
        ("24h", _("Last 24 hours")), ("7d", _("Last 7 days")), ("30d", _("Last 30 days")), ("90d", _("Last 90 days")),
        ("custom", _("Dates below")),
    ]
    STATUS_CHOICES = [
        ("", _("Any status")), ("success", _("Succeeded")), ("errors", _("Failed (any error)")),
        ("4xx", _("Client errors (4xx)")), ("429", _("Rate or budget limited (429)")), ("5xx", _("Server errors (5xx)")),
    ]

    range = forms.ChoiceField(label=_("Time range"), choices=RANGE_CHOICES, required=False, initial="7d", widget=ListSelect)
    since = forms.DateField(label=_("From"), required=False, widget=DateInput())
    until = forms.DateField(label=_("To (inclusive)"), required=False, widget=DateInput())
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("Any team"), widget=ListSelect)
    key = forms.ModelChoiceField(label=_("Key"), queryset=VirtualKey.objects.none(), required=False, empty_label=_("Any key"), widget=ListSelect)
    user = forms.ModelChoiceField(label=_("User"), queryset=User.objects.none(), required=False, empty_label=_("Anyone"), widget=ListSelect)
    model = forms.CharField(label=_("Model"), required=False, max_length=120, widget=forms.TextInput(attrs={"list": "model-names"}))
    status = forms.ChoiceField(label=_("Status"), choices=STATUS_CHOICES, required=False, widget=ListSelect)

    def __init__(self, *args, org_context, now: datetime, **kwargs):
        kwargs.setdefault("auto_id", "filter_%s")
        super().__init__(*args, **kwargs)
        org = org_context.organization
        self.organization, self.now = org, now
        self.time_zone = zoneinfo.ZoneInfo(org.time_zone)
        self.model_names = _model_names(org)
        if org_context.can(Perm.VIEW_USAGE):
            # Only what the options show: the lists hold every team, key and member of the organization.
            self.fields["team"].queryset = Team.objects.filter(organization=org).only("pk", "name")
            self.fields["key"].queryset = VirtualKey.objects.filter(organization=org).order_by("name", "id").only("pk", "name", "prefix")
            self.fields["user"].queryset = User.objects.filter(memberships__organization=org).order_by("email").only("pk", "name", "email")
        else:  # a member explores their own keys' usage only
            del self.fields["team"], self.fields["user"]
            self.fields["key"].queryset = VirtualKey.objects.filter(organization=org, user=org_context.user).order_by("name", "id")
        self.fields["key"].label_from_instance = lambda key: f"{key.name} ({key.prefix}…)"
        self.fields["since"].help_text = _("In %(tz)s.") % {"tz": org.time_zone}

    def clean(self):
        data = super().clean()
        if data.get("range") == "custom":
            since, until = data.get("since"), data.get("until")
            if since is None:
                if "since" not in self.errors:
                    self.add_error("since", _("Choose the first day."))
            elif until is not None and until < since:
                self.add_error("until", _("The last day cannot be before the first."))
            elif (until or self.now.astimezone(self.time_zone).date()) - since > timedelta(days=MAX_RANGE_DAYS):
                self.add_error("since", _("Choose at most %(days)d days.") % {"days": MAX_RANGE_DAYS})
        return data

    def _valid(self) -> dict:
        if not self.is_bound:
            return {}
        self.is_valid()
        return self.cleaned_data  # only the fields that passed

    def window(self) -> tuple[datetime, datetime]:
        """[since, until) as aware datetimes; custom dates are whole days in the organization's time zone."""
        data = self._valid()
        if data.get("range") == "custom" and data.get("since") and "since" not in self.errors and "until" not in self.errors:
            since = datetime.combine(data["since"], time.min, tzinfo=self.time_zone)
            until = datetime.combine(data["until"] + timedelta(days=1), time.min, tzinfo=self.time_zone) if data.get("until") else self.now
            until = min(until, self.now)
            return since, until if until > since else since + timedelta(days=1)  # days ahead: an empty range
        span = RANGES.get(data.get("range") or "7d", RANGES["7d"])
        return self.now - span, self.now

    def filters(self) -> dict:
        """Filters for the rollups and the request log, as `billing.selectors.usage_events` names them."""
        data = self._valid()
        since, until = self.window()
        status = data.get("status") or ""
        return {
            "since": since, "until": until,
            "team_id": data["team"].pk if data.get("team") else None,
            "key_id": data["key"].pk if data.get("key") else None,
            "user_id": data["user"].pk if data.get("user") else None,
            "model_name": (data.get("model") or "").strip() or None,
            "status": status if status in STATUS_FILTERS else "",
        }

    @property
    def filtered(self) -> bool:
        data = self._valid()
        return any(data.get(name) for name in ("team", "key", "user", "model", "status"))


# --- Budgets --------------------------------------------------------------------------------------------


def _parse_thresholds(text: str) -> list[int]:
    """ "50, 80, 100" (percent signs and Chinese commas allowed) -> [50, 80, 100]; empty -> [] (no threshold alerts)."""
    parts = [p for p in re.split(r"[,，;；\s]+", (text or "").replace("%", "")) if p]
    if not parts:
        return []
    try:
        values = [int(p) for p in parts]
    except ValueError as exc:
        raise forms.ValidationError(_("Give whole percentages separated by commas, e.g. 50, 80, 100.")) from exc
    if any(not 1 <= v <= 1000 for v in values):
        raise forms.ValidationError(_("Each threshold is a whole percentage between 1 and 1000."))
    return sorted(set(values))


class _BudgetFieldsForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120, required=False, help_text=_("Optional; shown in alerts."))
    amount = forms.DecimalField(label=_("Amount"), max_digits=20, decimal_places=6)
    period = forms.ChoiceField(label=_("Period"), choices=Budget.Period.choices, initial=Budget.Period.MONTH)
    hard = forms.BooleanField(
        label=_("Hard limit"), required=False, initial=True,
        help_text=_("Ticked: requests past the amount are refused (429). Unticked: alerts only."),
    )
    thresholds = forms.CharField(
        label=_("Alert thresholds (%)"), required=False, initial="50, 80, 100", max_length=200,
        help_text=_("Alerts fire once per period at each percentage; empty: no threshold alerts. The bar turns amber at the highest one below 100."),
    )
    downgrade_model = forms.ChoiceField(
        label=_("Downgrade to model"), required=False,
        help_text=_("For a soft budget past its amount: serve requests with this cheaper model instead."),
    )

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.organization = organization
        self.fields["amount"].label = _("Amount (%(currency)s)") % {"currency": organization.currency}
        self.fields["downgrade_model"].choices = [("", _("No downgrade"))] + [(n, n) for n in _model_names(organization)]

    def clean_amount(self):
        amount = self.cleaned_data["amount"]
        if amount <= 0:
            raise forms.ValidationError(_("Enter an amount above zero."))
        return amount

    def clean_thresholds(self):
        return _parse_thresholds(self.cleaned_data["thresholds"])

    def clean_name(self):
        return self.cleaned_data["name"].strip()


class BudgetCreateForm(_BudgetFieldsForm):
    scope = forms.ChoiceField(label=_("Scope"), choices=Budget.Scope.choices, initial=Budget.Scope.ORGANIZATION)
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("Choose a team"))
    key = forms.ModelChoiceField(label=_("Key"), queryset=VirtualKey.objects.none(), required=False, empty_label=_("Choose a key"))
    user = forms.ModelChoiceField(label=_("User"), queryset=User.objects.none(), required=False, empty_label=_("Choose a member"))

    field_order = ["name", "scope", "team", "key", "user", "amount", "period", "hard", "thresholds", "downgrade_model"]

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "budget_%s")
        super().__init__(*args, **kwargs)
        org = self.organization
        self.fields["team"].queryset = Team.objects.filter(organization=org)
        self.fields["key"].queryset = VirtualKey.objects.filter(organization=org, revoked_at=None).order_by("name", "id")
        self.fields["key"].label_from_instance = lambda key: f"{key.name} ({key.prefix}…)"
        self.fields["user"].queryset = User.objects.filter(memberships__organization=org).order_by("email")
        self.fields["user"].label_from_instance = lambda user: user.email
        for name in ("team", "key", "user"):
            self.fields[name].widget.attrs["data-scope-field"] = name

    def clean(self):
        data = super().clean()
        scope = data.get("scope")
        if scope in ("team", "key", "user") and not data.get(scope) and scope not in self.errors:
            self.add_error(scope, _("Choose one for a budget of this scope."))
        return data

    def service_kwargs(self) -> dict:
        data = dict(self.cleaned_data)
        scope = data["scope"]
        for name in ("team", "key", "user"):  # only the target of the chosen scope
            if name != scope:
                data[name] = None
        return data


class BudgetUpdateForm(_BudgetFieldsForm):
    """A budget's scope and target cannot change: another budget is created instead."""

    @classmethod
    def for_budget(cls, budget: Budget, data=None):
        initial = {
            "name": budget.name, "amount": budget.amount.normalize(), "period": budget.period, "hard": budget.hard,
            "thresholds": ", ".join(str(t) for t in budget.thresholds or []), "downgrade_model": budget.downgrade_model,
        }
        return cls(data, initial=initial, organization=budget.organization)


# --- Alert channels -------------------------------------------------------------------------------------


REENTER_URL = _("Re-enter the URL: it carries a token and is never sent back to the browser.")
REENTER_SIGNING_SECRET = _("Re-enter the signing secret: it is never sent back to the browser.")


class AlertChannelCreateForm(ReenterSecretsMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    kind = forms.ChoiceField(label=_("Kind"), choices=AlertChannel.Kind.choices, initial=AlertChannel.Kind.EMAIL)
    target = forms.CharField(
        label=_("Email addresses or URL"), max_length=2000,
        help_text=_("Email: addresses separated by commas. Webhook and bots: the HTTPS URL the bot settings show."),
    )
    secret = forms.CharField(
        label=_("Bot signing secret"), required=False, max_length=200, strip=True,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}),
        help_text=_("Feishu and DingTalk bots with signing on: the secret their settings show. "
                    "A webhook gets a signing secret from Tollgate, shown once."),
    )

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("auto_id", "channel_%s")
        super().__init__(*args, **kwargs)
        if self._url_kind():
            self.fields["target"].widget = WriteOnlyInput()  # a webhook or bot URL carries a token

    def _url_kind(self) -> bool:
        return self.is_bound and self.data.get(self.add_prefix("kind")) in AlertChannel.Kind.values and \
            self.data.get(self.add_prefix("kind")) != AlertChannel.Kind.EMAIL

    def secret_notes(self) -> dict:
        return {"secret": REENTER_SIGNING_SECRET, **({"target": REENTER_URL} if self._url_kind() else {})}


class AlertChannelUpdateForm(ReenterSecretsMixin, forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    target = forms.CharField(label=_("Email addresses or URL"), max_length=2000, required=False)
    secret = forms.CharField(
        label=_("Bot signing secret"), required=False, max_length=200,
        widget=forms.PasswordInput(attrs={"autocomplete": "off"}), help_text=_("Empty: unchanged."),
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False)

    def __init__(self, *args, channel: AlertChannel, **kwargs):
        super().__init__(*args, **kwargs)
        self.channel = channel
        if channel.kind == AlertChannel.Kind.EMAIL:
            self.fields["target"].label = _("Email addresses")
            self.fields["target"].required = True
            self.fields["target"].help_text = _("Separated by commas.")
        else:
            # Bot URLs carry a token: never sent back to the browser; a new one replaces it.
            self.fields["target"].label = _("New URL")
            self.fields["target"].help_text = _("Empty: unchanged.")
            self.fields["target"].widget = WriteOnlyInput()
        if channel.kind not in (AlertChannel.Kind.FEISHU, AlertChannel.Kind.DINGTALK):
            del self.fields["secret"]

    def secret_notes(self) -> dict:
        return {"secret": REENTER_SIGNING_SECRET, **({"target": REENTER_URL} if self.channel.has_url else {})}

    @classmethod
    def for_channel(cls, channel: AlertChannel, data=None):
        initial = {"name": channel.name, "enabled": channel.enabled}
        if channel.kind == AlertChannel.Kind.EMAIL:
            initial["target"] = channel.target
        return cls(data, initial=initial, channel=channel)

    def service_kwargs(self) -> dict:
        data = self.cleaned_data
        changes = {"name": data["name"], "enabled": data["enabled"]}
        if data.get("target"):
            changes["target"] = data["target"]
        if data.get("secret"):
            changes["secret"] = data["secret"]
        return changes


# --- Cost estimator -------------------------------------------------------------------------------------


class EstimateForm(forms.Form):
    SIZE_UNITS = [("tokens", _("tokens")), ("characters", _("characters"))]

    text = forms.CharField(
        label=_("Text"), required=False, strip=False, max_length=estimator.MAX_UPLOAD_BYTES,
        widget=forms.Textarea(attrs={"rows": 6}), help_text=_("One request with this prompt."),
    )
    file = forms.FileField(label=_("Or a text file"), required=False, help_text=_("UTF-8, at most 5 MB. One request."))
    documents = forms.IntegerField(
        label=_("Or a number of documents"), required=False, min_value=1, max_value=estimator.MAX_DOCUMENTS,
        help_text=_("One request per document."),
    )
    average_size = forms.IntegerField(
        label=_("Average document size"), required=False, min_value=1,
        max_value=estimator.MAX_TOKENS_PER_REQUEST * estimator.CHARS_PER_TOKEN,
    )
    size_unit = forms.ChoiceField(label=_("Size unit"), choices=SIZE_UNITS, initial="tokens")
    expected_output_tokens = forms.IntegerField(
        label=_("Expected output tokens per request"), min_value=0, max_value=estimator.MAX_TOKENS_PER_REQUEST, initial=500,
    )
    models = forms.MultipleChoiceField(label=_("Models to compare"), widget=forms.CheckboxSelectMultiple)

    def __init__(self, *args, organization, **kwargs):
        super().__init__(*args, **kwargs)
        names = list(Model.objects.filter(organization=organization, is_active=True).order_by("name").values_list("name", flat=True))
        self.fields["models"].choices = [(n, n) for n in names]
        if not self.is_bound:
            self.initial.setdefault("models", names[:4])

    def clean(self):
        data = super().clean()
        given = [name for name in ("text", "file", "documents") if data.get(name)]
        if len(given) > 1:
            raise forms.ValidationError(_("Give a text, a file or a number of documents: only one of them."))
        if not given and not self.errors.get("documents") and not self.errors.get("file"):
            raise forms.ValidationError(_("Give a text, a file, or a number of documents and their average size."))
        if data.get("documents") and not data.get("average_size") and "average_size" not in self.errors:
            self.add_error("average_size", _("Give the documents' average size."))
        return data

    def estimator_kwargs(self) -> dict:
        """Arguments for `billing.estimator.estimate_cost` (the file is read here, within its size limit)."""
        data = self.cleaned_data
        kwargs = {"expected_output_tokens": data["expected_output_tokens"], "models": list(data["models"])}
        if data.get("file"):
            kwargs["text"] = estimator.upload_text(upload=data["file"])
        elif data.get("text"):
            kwargs["text"] = data["text"]
        else:
            kwargs["documents"] = data["documents"]
            unit = "average_document_tokens" if data.get("size_unit") == "tokens" else "average_document_characters"
            kwargs[unit] = data["average_size"]
        return kwargs

