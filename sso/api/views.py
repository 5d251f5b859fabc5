"""REST endpoint for the organization's single sign-on connection (owners and admins).

The client secret is write-only: answers say whether one is stored and its last four characters.
"""

from drf_spectacular.utils import extend_schema
from rest_framework import serializers, status
from rest_framework.response import Response

from accounts.api.base import OrgAPIView
from accounts.permissions import Perm
from sso import kinds, selectors, services


class SsoConnectionOutput(serializers.Serializer):
    kind = serializers.CharField()
    display_name = serializers.CharField()
    client_id = serializers.CharField()
    client_secret_set = serializers.SerializerMethodField()
    client_secret_hint = serializers.CharField()
    issuer_url = serializers.CharField()
    agent_id = serializers.CharField()
    allowed_domains = serializers.ListField(child=serializers.CharField())
    default_role = serializers.CharField()
    auto_join = serializers.BooleanField()
    require_sso = serializers.BooleanField()
    enabled = serializers.BooleanField()
    login_path = serializers.SerializerMethodField()
    updated_at = serializers.DateTimeField()

    class Meta:
        ref_name = "SsoConnection"

    def get_client_secret_set(self, connection) -> bool:
        return bool(connection.client_secret_encrypted)

    def get_login_path(self, connection) -> str:
        return f"/sso/{connection.organization.slug}/"


class SsoConnectionApi(OrgAPIView):
    """GET the connection (404 when none), PUT to create or change it (fields left out keep their value), DELETE it."""

    permissions = {"GET": Perm.MANAGE_ORG, "PUT": Perm.MANAGE_ORG, "DELETE": Perm.MANAGE_ORG}

    class InputSerializer(serializers.Serializer):
        kind = serializers.ChoiceField(choices=[value for value, _label in kinds.CHOICES], required=False)
        display_name = serializers.CharField(max_length=60, required=False, allow_blank=True)
        client_id = serializers.CharField(max_length=200, required=False)
        client_secret = serializers.CharField(required=False, allow_blank=True, write_only=True, help_text="Write-only; blank or left out keeps the stored one.")
        issuer_url = serializers.URLField(max_length=500, required=False, allow_blank=True)
        agent_id = serializers.CharField(max_length=40, required=False, allow_blank=True)
        allowed_domains = serializers.ListField(child=serializers.CharField(max_length=253), required=False, max_length=100)
        default_role = serializers.ChoiceField(choices=list(services.JOINABLE_ROLES), required=False)
        auto_join = serializers.BooleanField(required=False)
        require_sso = serializers.BooleanField(required=False)
        enabled = serializers.BooleanField(required=False)

        class Meta:
            ref_name = "SsoConnectionInput"

    @extend_schema(tags=["single sign-on"], responses=SsoConnectionOutput)
    def get(self, request):
        connection = selectors.connection_for_org(self.organization.pk)
        if connection is None:
            return Response({"error": {"code": "not_found", "message": "This organization has no single sign-on.", "fields": {}}}, status=404)
        return Response(SsoConnectionOutput(connection).data)

    @extend_schema(tags=["single sign-on"], request=InputSerializer, responses=SsoConnectionOutput)
    def put(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        secret = data.pop("client_secret", None)
        connection = services.sso_connection_save(actor=self.org_context, client_secret=secret, ip=self.client_ip(), **data)
        return Response(SsoConnectionOutput(connection).data)

    @extend_schema(tags=["single sign-on"], responses={204: None})
    def delete(self, request):
        services.sso_connection_delete(actor=self.org_context, ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)
