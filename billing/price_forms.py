"""Dashboard forms for the price book and exchange rates.

They check the shape of input only; the rules (amounts, tiers, windows, no start in the past) live in
`billing.services.price_create` and `exchange_rate_set`, whose refusals land on the field they name.
A change is always a new entry: the "edit" forms start from an entry's values and save a new one.
"""

import json
from decimal import Decimal

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.models import TIME_ZONE_CHOICES
from keys.forms import DateTimeLocalInput
from keys.models import provider_choices

TIERS_EXAMPLE = '[{"above_prompt_tokens": 32000, "input": "1.2", "cached_input": "0.3", "output": "6"}]'
WINDOWS_EXAMPLE = '[{"days": [0, 1, 2, 3, 4], "start": "09:00", "end": "12:00", "multiplier": "2"}]'


def _per_million(label, *, required=True):
    return forms.DecimalField(
        label=label, required=required, min_value=Decimal(0), max_digits=20, decimal_places=10,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )


def _json_list(text: str) -> list:
    text = (text or "").strip()
    if not text:
        return []
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise forms.ValidationError(_("Enter a JSON list, like the example.")) from exc
    if not isinstance(value, list):
        raise forms.ValidationError(_("Enter a JSON list, like the example."))
    return value


class _EffectiveFromMixin:
    def _effective_from_help(self, time_zone: str):
        self.fields["effective_from"].help_text = _(
            "In %(tz)s. Empty: now. A later date schedules the change; the past cannot be rewritten."
        ) % {"tz": time_zone}


class PriceForm(_EffectiveFromMixin, forms.Form):
    """A new price book entry. `for_entry` starts from an existing entry of the same model (its provider and
    model then fixed): saving adds the entry that replaces it from `effective_from` on."""

    provider = forms.ChoiceField(label=_("Provider"), choices=provider_choices)
    upstream_model = forms.CharField(label=_("Model at the provider"), max_length=200)
    currency = forms.RegexField(
        label=_("Currency"), regex=r"^[A-Za-z]{3}$", max_length=3,
        error_messages={"invalid": _("Use a three-letter currency code.")},
    )
    input_per_m = _per_million(_("Input per 1M tokens"))
    cached_input_per_m = _per_million(_("Cached input per 1M tokens"), required=False)
    output_per_m = _per_million(_("Output per 1M tokens"))
    per_search_unit = forms.DecimalField(
        label=_("Per rerank search unit"), required=False, min_value=Decimal(0), max_digits=20, decimal_places=10,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
        help_text=_("Optional, for rerank models billed per search (Cohere: a query with up to 100 documents)."),
    )
    tiers = forms.CharField(
        label=_("Tiers by prompt size (JSON)"), required=False, max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "placeholder": TIERS_EXAMPLE}),
        help_text=_("Optional. The highest tier a request's prompt exceeds prices the whole request."),
    )
    windows = forms.CharField(
        label=_("Time-of-day windows (JSON)"), required=False, max_length=5000,
        widget=forms.Textarea(attrs={"rows": 2, "spellcheck": "false", "placeholder": WINDOWS_EXAMPLE}),
        help_text=_("Optional. Days 0 = Monday … 6 = Sunday; the multiplier applies to the whole request."),
    )
    time_zone = forms.ChoiceField(label=_("Time zone of the windows"), choices=TIME_ZONE_CHOICES, initial="UTC")
    effective_from = forms.DateTimeField(label=_("Effective from"), required=False, widget=DateTimeLocalInput())
    source = forms.CharField(label=_("Source"), required=False, max_length=300, help_text=_("Where the price comes from, e.g. the provider's pricing page."))

    def __init__(self, *args, time_zone: str, fixed_model: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._effective_from_help(time_zone)
        if fixed_model:  # a new entry for a model already in the book
            for name in ("provider", "upstream_model"):
                self.fields[name].disabled = True

    @classmethod
    def for_entry(cls, price, *, time_zone: str, data=None):
        initial = {
            "provider": price.provider, "upstream_model": price.upstream_model, "currency": price.currency,
            "input_per_m": price.input_per_m.normalize(), "output_per_m": price.output_per_m.normalize(),
            "cached_input_per_m": price.cached_input_per_m.normalize() if price.cached_input_per_m is not None else None,
            "per_search_unit": price.per_search_unit.normalize() if price.per_search_unit is not None else None,
            "tiers": json.dumps(price.tiers) if price.tiers else "", "windows": json.dumps(price.windows) if price.windows else "",
            "time_zone": price.time_zone, "source": price.source,
        }
        return cls(data, initial=initial, time_zone=time_zone, fixed_model=True)

    def clean_tiers(self):
        return _json_list(self.cleaned_data["tiers"])

    def clean_windows(self):
        return _json_list(self.cleaned_data["windows"])

    def service_kwargs(self) -> dict:
        return dict(self.cleaned_data)


class ExchangeRateForm(_EffectiveFromMixin, forms.Form):
    currency = forms.RegexField(
        label=_("Currency"), regex=r"^[A-Za-z]{3}$", max_length=3,
        error_messages={"invalid": _("Use a three-letter currency code.")},
    )
    rate = forms.DecimalField(
        label=_("Rate"), min_value=Decimal(0), max_digits=20, decimal_places=10,
        widget=forms.NumberInput(attrs={"step": "any", "inputmode": "decimal"}),
    )
    effective_from = forms.DateTimeField(label=_("Effective from"), required=False, widget=DateTimeLocalInput())

    def __init__(self, *args, organization, fixed_currency: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self._effective_from_help(organization.time_zone)
        self.fields["rate"].label = _("One unit of the currency in %(currency)s") % {"currency": organization.currency}
        if fixed_currency:
            self.fields["currency"].initial = fixed_currency
            self.fields["currency"].disabled = True
