"""Django admin for operators: prices, exchange rates, the usage ledger and rollups, budgets and alerts, read-only.

Changes go through the dashboard or the REST API, where the services validate, audit and tell the relay to
drop its caches; the one write here, sending a test alert, calls the same service. Secrets never appear:
no encrypted channel secret, and bot URLs (which carry the bot's token) only as scheme and host.
"""


from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin
from accounts.client import client_ip
from accounts.errors import ApplicationError
from accounts.models import Role
from accounts.tenancy import OrgContext
from billing import alerts
from billing.models import Alert, AlertChannel, AlertDelivery, Budget, ExchangeRate, Price, UsageDeadLetter, UsageEvent, UsageRollup


@admin.register(Price)
class PriceAdmin(ReadOnlyAdmin):
    list_display = ["provider", "upstream_model", "organization", "currency", "input_per_m", "cached_input_per_m", "cache_write_per_m", "output_per_m", "effective_from"]
    list_filter = ["provider", "currency", ("organization", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["provider", "upstream_model", "organization__name"]
    date_hierarchy = "effective_from"


@admin.register(ExchangeRate)
class ExchangeRateAdmin(ReadOnlyAdmin):
    list_display = ["organization", "currency", "rate", "effective_from"]
    list_filter = ["currency"]
    list_select_related = ["organization"]
    search_fields = ["organization__name", "currency"]


@admin.register(UsageEvent)
class UsageEventAdmin(ReadOnlyAdmin):
    list_display = [
        "request_id", "organization", "model_name", "status_code", "prompt_tokens", "completion_tokens", "cost_display", "usage_source",
        "created_at",
    ]
    list_filter = ["usage_source", "stream", "endpoint", "organization"]
    list_select_related = ["organization"]
    search_fields = ["request_id", "model_name", "upstream_model"]
    date_hierarchy = "created_at"
    show_full_result_count = False  # the ledger is large: no COUNT(*) over it per page


@admin.register(UsageDeadLetter)
class UsageDeadLetterAdmin(ReadOnlyAdmin):
    """Usage records the ledger refused (billing.ledger), with the reason; their batches went in without them."""

    list_display = ["created_at", "request_id", "organization", "reason", "stream_entry"]
    list_filter = [("organization", admin.EmptyFieldListFilter)]
    list_select_related = ["organization"]
    search_fields = ["request_id", "reason", "stream_entry"]
    date_hierarchy = "created_at"
    fields = ["created_at", "organization", "request_id", "stream_entry", "reason", "record"]


@admin.register(UsageRollup)
class UsageRollupAdmin(ReadOnlyAdmin):
    list_display = ["bucket", "grain", "organization", "model_name", "requests", "errors", "cost", "unpriced"]
    list_filter = ["grain", "organization"]
    list_select_related = ["organization"]
    search_fields = ["model_name"]
    date_hierarchy = "bucket"
    show_full_result_count = False


@admin.register(Budget)
class BudgetAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "organization", "scope", "period", "amount", "hard", "created_at"]
    list_filter = ["scope", "period", "hard", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]


@admin.register(AlertChannel)
class AlertChannelAdmin(ReadOnlyAdmin):
    list_display = ["name", "kind", "organization", "destination", "enabled", "disabled_reason", "created_at"]
    list_filter = ["kind", "enabled", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]
    fields = ["organization", "name", "kind", "destination", "enabled", "disabled_reason", "created_at"]
    readonly_fields = fields
    actions = ["send_test"]

    @admin.display(description=_("destination"))
    def destination(self, channel):
        return channel.destination

    def has_send_test_permission(self, request):
        return request.user.has_perm("billing.change_alertchannel")

    @admin.action(description=_("Send a test alert"), permissions=["send_test"])
    def send_test(self, request, queryset):
        for channel in queryset.select_related("organization"):
            # An operator acting in the admin counts as an owner of the channel's organization.
            actor = OrgContext(organization=channel.organization, role=Role.OWNER, user=request.user)
            try:
                delivery = alerts.alert_send_test(actor=actor, channel=channel, ip=client_ip(request))
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
            level = messages.SUCCESS if delivery.status == AlertDelivery.Status.SENT else messages.WARNING
            self.message_user(request, f"{channel}: {delivery.get_status_display()} {delivery.last_error}".strip(), level)


@admin.register(Alert)
class AlertAdmin(ReadOnlyAdmin):
    list_display = ["kind", "organization", "budget", "created_at"]
    list_filter = ["kind", "organization"]
    list_select_related = ["organization", "budget"]
    search_fields = ["dedupe_key", "organization__name"]
    date_hierarchy = "created_at"


@admin.register(AlertDelivery)
class AlertDeliveryAdmin(ReadOnlyAdmin):
    list_display = ["alert", "channel", "status", "attempts", "last_status_code", "next_attempt_at", "sent_at", "created_at"]
    list_filter = ["status", "organization"]
    list_select_related = ["alert", "channel"]
    search_fields = ["message_id", "channel__name"]
    date_hierarchy = "created_at"
