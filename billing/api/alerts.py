"""REST endpoints of alert channels and the delivery log (reads: billing.selectors.alerts, as the budgets page)."""


from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.api.views import paginated_response
from accounts.permissions import Perm
from billing import alerts, selectors
from billing.api.serializers import AlertChannelSerializer, AlertChannelWithSecretSerializer, AlertDeliverySerializer
from billing.models import AlertChannel, AlertDelivery

# Alert channels and the delivery log

CHANNEL_NOTE = (
    "Webhook channels sign every delivery (Standard Webhooks: `webhook-id`, `webhook-timestamp`, "
    "`webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body>`); their secret is generated on "
    "create and shown in that response and after a rotation only. Feishu and DingTalk bots take the "
    "signing secret the bot settings show (write-only). Bot URLs carry a token, so URLs are shown as "
    "scheme and host only."
)


class AlertChannelListApi(OrgAPIView):
    """Where alerts go: email, signed webhooks, Feishu/Lark, DingTalk and WeCom bots (manage_budgets to change)."""

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_BUDGETS}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        kind = serializers.ChoiceField(choices=AlertChannel.Kind.choices)
        target = serializers.CharField(max_length=2000, help_text="Email addresses (comma-separated) or the HTTPS URL.")
        secret = serializers.CharField(
            write_only=True, required=False, allow_blank=True, max_length=200,
            help_text="Feishu/DingTalk: the bot's signing secret. Webhook: generated when omitted.",
        )
        enabled = serializers.BooleanField(required=False, default=True)

        class Meta:
            ref_name = "AlertChannelCreate"

    OutputSerializer = AlertChannelSerializer

    @extend_schema(tags=["alerts"], responses=OutputSerializer(many=True), description=CHANNEL_NOTE)
    def get(self, request):
        return paginated_response(self, selectors.alert_channels_visible_to(self.org_context), self.OutputSerializer)

    @extend_schema(tags=["alerts"], request=InputSerializer, responses={201: AlertChannelWithSecretSerializer}, description=CHANNEL_NOTE)
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel, secret = alerts.alert_channel_create(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        channel = selectors.alert_channels_visible_to(self.org_context).get(pk=channel.pk)
        return Response(AlertChannelWithSecretSerializer(channel, context={"secret": secret}).data, status=status.HTTP_201_CREATED)


class AlertChannelDetailApi(OrgAPIView):
    """One alert channel. Re-enabling a channel that was disabled after failed deliveries clears the reason."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_BUDGETS, "DELETE": Perm.MANAGE_BUDGETS}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        target = serializers.CharField(max_length=2000, required=False)
        secret = serializers.CharField(
            write_only=True, required=False, allow_blank=True, max_length=200,
            help_text="Feishu/DingTalk bots only (empty removes it); a webhook's secret is rotated instead.",
        )
        enabled = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "AlertChannelUpdate"

    OutputSerializer = AlertChannelSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.alert_channels_visible_to(self.org_context), pk=pk)

    @extend_schema(tags=["alerts"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["alerts"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        channel = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        channel = alerts.alert_channel_update(actor=self.org_context, channel=channel, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["alerts"], responses={204: None}, description="Its delivery log goes with it.")
    def delete(self, request, pk):
        alerts.alert_channel_delete(actor=self.org_context, channel=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


class AlertChannelRotateSecretApi(OrgAPIView):
    """A new signing secret for a webhook channel, shown this once; the old one keeps signing until the next rotation."""

    permissions = {"POST": Perm.MANAGE_BUDGETS}
    OutputSerializer = AlertChannelWithSecretSerializer

    @extend_schema(tags=["alerts"], request=None, responses=OutputSerializer)
    def post(self, request, pk):
        channels = selectors.alert_channels_visible_to(self.org_context)
        channel = self.get_scoped(channels, pk=pk)
        channel, secret = alerts.alert_channel_rotate_secret(actor=self.org_context, channel=channel, ip=self.client_ip())
        return Response(self.OutputSerializer(channels.get(pk=channel.pk), context={"secret": secret}).data)


class AlertChannelTestApi(OrgAPIView):
    """Send a test alert to the channel now (even a disabled one) and return the delivery: tried once, never retried."""

    permissions = {"POST": Perm.MANAGE_BUDGETS}
    OutputSerializer = AlertDeliverySerializer

    @extend_schema(tags=["alerts"], request=None, responses=OutputSerializer)
    def post(self, request, pk):
        channel = self.get_scoped(AlertChannel, pk=pk)
        delivery = alerts.alert_send_test(actor=self.org_context, channel=channel, ip=self.client_ip())
        delivery = selectors.alert_delivery_get(organization=self.organization, pk=delivery.pk)
        return Response(self.OutputSerializer(delivery).data)


class AlertDeliveryListApi(OrgAPIView):
    """The delivery log, newest first: each alert sent to each channel, its attempts and the last answer."""

    permissions = {"GET": Perm.VIEW_ORG}
    pagination_class = Pagination

    class FilterSerializer(serializers.Serializer):
        channel = serializers.IntegerField(required=False, min_value=1, help_text="Only this channel's deliveries.")
        status = serializers.ChoiceField(choices=AlertDelivery.Status.choices, required=False)

    OutputSerializer = AlertDeliverySerializer

    @extend_schema(tags=["alerts"], parameters=[FilterSerializer], responses=OutputSerializer(many=True))
    def get(self, request):
        filters = self.FilterSerializer(data=request.query_params.dict())
        filters.is_valid(raise_exception=True)
        deliveries = selectors.alert_deliveries_visible_to(self.org_context)
        if filters.validated_data.get("channel"):
            deliveries = deliveries.filter(channel_id=filters.validated_data["channel"])
        if filters.validated_data.get("status"):
            deliveries = deliveries.filter(status=filters.validated_data["status"])
        return paginated_response(self, deliveries, self.OutputSerializer)
