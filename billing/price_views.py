"""Dashboard pages of the price book and the exchange rates.

Reads go through the selectors the REST API uses (`billing.selectors.price_book_models`,
`exchange_rate_list`), writes through `billing.services.price_create` and `exchange_rate_set`. Nothing is
edited in place: "edit" opens a form started from an entry's values, and saving adds a new entry from its
effective date on, so usage already recorded keeps the price and rate it was charged at.

Reading needs view_org (every role); a price needs manage_providers, a rate manage_org (the role matrix).
"""


from django.contrib import messages
from django.db.models import Q
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.dates import WEEKDAYS_ABBR
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import client_ip, in_org_time_zone, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.permissions import Perm
from billing import selectors, services
from billing.api.serializers import money_text
from billing.models import ExchangeRate, Price
from billing.price_forms import ExchangeRateForm, PriceForm
from wire.presets import PRESETS


def _provider_label(slug: str) -> str:
    preset = PRESETS.get(slug)
    return _(preset.label) if preset else slug


def tier_text(tier: dict) -> str:
    cached = tier.get("cached_input")
    rates = " / ".join(money_text(v) for v in (tier["input"], cached, tier["output"]) if v is not None)
    return _("prompt over %(tokens)s tokens: %(rates)s") % {"tokens": f"{tier['above_prompt_tokens']:,}", "rates": rates}


def window_text(window: dict, time_zone: str) -> str:
    days = sorted(int(d) for d in window["days"])
    if len(days) > 2 and days == list(range(days[0], days[-1] + 1)):
        day_text = f"{WEEKDAYS_ABBR[days[0]]}–{WEEKDAYS_ABBR[days[-1]]}"
    else:
        day_text = ", ".join(str(WEEKDAYS_ABBR[d]) for d in days)
    return _("%(days)s %(start)s–%(end)s (%(tz)s): ×%(multiplier)s") % {
        "days": day_text, "start": window["start"], "end": window["end"], "tz": time_zone,
        "multiplier": money_text(window["multiplier"]),
    }


def _entry(price: Price) -> dict:
    return {
        "price": price,
        "input": money_text(price.input_per_m),
        "cached_input": money_text(price.cached_input_per_m),
        "output": money_text(price.output_per_m),
        "per_search_unit": money_text(price.per_search_unit) if price.per_search_unit is not None else None,
        "tiers": [tier_text(t) for t in price.tiers or []],
        "windows": [window_text(w, price.time_zone) for w in price.windows or []],
        "own": price.organization_id is not None,
    }


def _book(organization, provider: str | None) -> list[dict]:
    """The book as the page lists it: per provider, its models, each with its entry in force and the others."""
    sections: dict[str, dict] = {}
    for model in selectors.price_book_models(organization=organization, provider=provider):
        section = sections.setdefault(model.provider, {"slug": model.provider, "label": _provider_label(model.provider), "models": []})
        entries = {p.pk: _entry(p) for p in model.entries}
        section["models"].append({
            "provider": model.provider,
            "upstream_model": model.upstream_model,
            "current": entries[model.current.pk] if model.current else None,
            "scheduled": [entries[p.pk] for p in model.scheduled],
            "history": [entries[p.pk] for p in model.history],
            "entries": list(entries.values()),
            "edit_from": (model.current or model.scheduled[0]).pk,
        })
    order = list(PRESETS)
    return sorted(sections.values(), key=lambda s: (order.index(s["slug"]) if s["slug"] in order else len(order), s["slug"]))


def _prices_page(request, *, form=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    provider = request.GET.get("provider") or ""
    provider = provider if provider in PRESETS else ""
    can_manage = ctx.can(Perm.MANAGE_PROVIDERS)
    context = {
        "nav_section": "prices",
        "sections": _book(org, provider or None),
        "provider": provider,
        "providers": [(slug, _(preset.label)) for slug, preset in PRESETS.items()],
        "can_manage": can_manage,
        "now": timezone.now(),
    }
    if can_manage:
        context["form"] = form or PriceForm(time_zone=org.time_zone)
    return render(request, "billing/prices.html", context, status=status)


@require_GET
@permission_required(Perm.VIEW_ORG)
@in_org_time_zone
def prices(request):
    return _prices_page(request)


def _save_price(request, form):
    """The form's entry through the service; its refusals land on the form. Returns the entry or None."""
    try:
        return services.price_create(actor=request.org_context, ip=client_ip(request), **form.service_kwargs())
    except ApplicationError as exc:
        service_error(form, exc)
        return None


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
@in_org_time_zone
def price_create(request):
    form = PriceForm(request.POST, time_zone=request.org_context.organization.time_zone)
    if form.is_valid() and (price := _save_price(request, form)) is not None:
        messages.success(request, _("Price for %(model)s added.") % {"model": price.upstream_model})
        return redirect(reverse("prices") + f"#provider-{price.provider}")
    return _prices_page(request, form=form, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_PROVIDERS)
@in_org_time_zone
def price_edit(request, pk):
    """A new entry for the model of entry `pk` (the organization's or the global book's), from its values."""
    org = request.org_context.organization
    base = Price.objects.filter(Q(organization=org) | Q(organization=None), pk=pk).first()
    if base is None:
        raise Http404("Not found.")
    form = PriceForm.for_entry(base, time_zone=org.time_zone, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid() and (price := _save_price(request, form)) is not None:
        when = timezone.localtime(price.effective_from).strftime("%Y-%m-%d %H:%M")
        messages.success(request, _("New price for %(model)s from %(when)s.") % {"model": price.upstream_model, "when": when})
        return redirect("prices")
    model = next(iter(selectors.price_book_models(organization=org, provider=base.provider, upstream_model=base.upstream_model)), None)
    entries = [_entry(p) for p in model.entries] if model else []
    context = {
        "nav_section": "prices", "base": base, "provider_label": _provider_label(base.provider), "form": form,
        "entries": entries, "now": timezone.now(),
    }
    return render(request, "billing/price_edit.html", context, status=form_status(form) if form.errors else 200)


# --- Exchange rates ------------------------------------------------------------------------------------------


def _rate_groups(organization) -> list[dict]:
    rates = selectors.exchange_rates_mark_in_force(list(selectors.exchange_rate_list(organization=organization)), organization=organization)
    now = timezone.now()
    groups: dict[str, dict] = {}
    for rate in rates:
        group = groups.setdefault(rate.currency, {"currency": rate.currency, "current": None, "rates": []})
        group["rates"].append({"rate": rate, "value": money_text(rate.rate), "scheduled": rate.effective_from > now})
        if rate.in_force:
            group["current"] = rate
    return list(groups.values())


def _rates_page(request, *, form=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    can_manage = ctx.can(Perm.MANAGE_ORG)
    context = {"nav_section": "exchange_rates", "groups": _rate_groups(org), "can_manage": can_manage, "currency": org.currency}
    if can_manage:
        context["form"] = form or ExchangeRateForm(organization=org)
    return render(request, "billing/exchange_rates.html", context, status=status)


@require_GET
@permission_required(Perm.VIEW_ORG)
@in_org_time_zone
def exchange_rates(request):
    return _rates_page(request)


def _save_rate(request, form):
    try:
        return services.exchange_rate_set(actor=request.org_context, ip=client_ip(request), **form.cleaned_data)
    except ApplicationError as exc:
        service_error(form, exc)
        return None


@require_POST
@permission_required(Perm.MANAGE_ORG)
@in_org_time_zone
def exchange_rate_create(request):
    form = ExchangeRateForm(request.POST, organization=request.org_context.organization)
    if form.is_valid() and (rate := _save_rate(request, form)) is not None:
        messages.success(request, _("Rate for %(currency)s saved.") % {"currency": rate.currency})
        return redirect("exchange_rates")
    return _rates_page(request, form=form, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_ORG)
@in_org_time_zone
def exchange_rate_edit(request, pk):
    """A new rate for the currency of rate `pk`, from now or a later date; the history of that currency."""
    org = request.org_context.organization
    base = ExchangeRate.objects.filter(organization=org, pk=pk).first()
    if base is None:
        raise Http404("Not found.")
    data = request.POST if request.method == "POST" else None
    form = ExchangeRateForm(data, organization=org, fixed_currency=base.currency, initial={"rate": base.rate.normalize()})
    if request.method == "POST" and form.is_valid() and (rate := _save_rate(request, form)) is not None:
        messages.success(request, _("Rate for %(currency)s saved.") % {"currency": rate.currency})
        return redirect("exchange_rates")
    group = next((g for g in _rate_groups(org) if g["currency"] == base.currency), None)
    context = {"nav_section": "exchange_rates", "base": base, "form": form, "group": group, "currency": org.currency}
    return render(request, "billing/exchange_rate_edit.html", context, status=form_status(form) if form.errors else 200)
