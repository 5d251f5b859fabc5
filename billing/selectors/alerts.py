"""Alert channels and the delivery log, as a role may see them (pages and REST API alike)."""

from django.db.models import F, Q, QuerySet, Value

from accounts.permissions import Perm
from billing.models import AlertChannel, AlertDelivery
from billing.selectors.budgets import budgets_visible_to


def alert_channels_visible_to(org_context) -> QuerySet[AlertChannel]:
    """Every channel by name, with `shown_target` and `shown_hint`: its addresses and its URL's hint for
    manage_budgets, else empty (an address or a bot URL is not for every member's eyes)."""
    channels = AlertChannel.objects.filter(organization=org_context.organization).order_by("name", "id")
    if org_context.can(Perm.MANAGE_BUDGETS):
        return channels.annotate(shown_target=F("target"), shown_hint=F("url_hint"))
    return channels.annotate(shown_target=Value(""), shown_hint=Value(""))


def shown_destination(channel) -> str:
    """A channel from alert_channels_visible_to as it may be shown: email addresses, or a URL's hint."""
    return channel.shown_hint if channel.has_url else channel.shown_target


def alert_deliveries_visible_to(org_context) -> QuerySet[AlertDelivery]:
    """The delivery log of the alerts about what the caller may see: budget alerts of visible budgets, and the rest."""
    deliveries = AlertDelivery.objects.filter(organization=org_context.organization).select_related("alert", "channel")
    if not (org_context.can(Perm.VIEW_USAGE) or org_context.can(Perm.MANAGE_BUDGETS)):
        deliveries = deliveries.filter(Q(alert__budget=None) | Q(alert__budget__in=budgets_visible_to(org_context).values("pk")))
    return deliveries.order_by("-created_at", "-id")


def alert_delivery_get(*, organization, pk: int) -> AlertDelivery:
    return AlertDelivery.objects.select_related("alert", "channel").get(organization=organization, pk=pk)
