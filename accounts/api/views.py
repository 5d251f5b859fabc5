"""REST endpoints for the organization, its members, teams, invitations, API tokens and audit log.

Each view reads through `accounts.selectors`, writes through one `accounts.services` function and finds
objects only inside the caller's organization (`get_scoped`), so another organization's object is a 404.
"""

from django.conf import settings
from django.db import transaction
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.plumbing import build_bearer_security_scheme_object
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import serializers, status
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import IsAuthenticated
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import selectors, services
from accounts.api.authentication import TokenUser
from accounts.api.base import OrgAPIView
from accounts.api.pagination import Pagination
from accounts.api.serializers import (
    ApiTokenSerializer,
    AuditEntrySerializer,
    InvitationLinkSerializer,
    InvitationSerializer,
    MemberSerializer,
    OrganizationSerializer,
    TeamSerializer,
)
from accounts.client import client_ip
from accounts.errors import ApplicationError
from accounts.models import TIME_ZONE_CHOICES, Role, Team
from accounts.permissions import Perm
from accounts.tenancy import OrgContext


class ApiTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    """Documents `Authorization: Bearer tgo_…` in the schema (drf-spectacular finds it by subclassing)."""

    target_class = "accounts.api.authentication.ApiTokenAuthentication"
    name = "apiToken"

    def get_security_definition(self, auto_schema):
        return build_bearer_security_scheme_object(header_name="Authorization", token_prefix="Bearer")


def paginated_response(view: APIView, queryset, serializer_class) -> Response:
    paginator = view.pagination_class()
    page = paginator.paginate_queryset(queryset, view.request, view=view)
    return paginator.get_paginated_response(serializer_class(page, many=True).data)


# Organization


class OrganizationApi(OrgAPIView):
    """The caller's organization. Changing it needs the manage_org permission (owner, admin)."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_ORG}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120, required=False)
        time_zone = serializers.ChoiceField(choices=TIME_ZONE_CHOICES, required=False, help_text="An IANA time zone name.")
        currency = serializers.CharField(min_length=3, max_length=3, required=False, help_text="ISO 4217, e.g. USD.")
        language = serializers.ChoiceField(
            choices=settings.LANGUAGES, required=False, help_text="The language of alert emails, webhook summaries and bot messages."
        )

        class Meta:
            ref_name = "OrganizationUpdate"

    OutputSerializer = OrganizationSerializer

    @extend_schema(tags=["organization"], responses=OutputSerializer)
    def get(self, request):
        return Response(self.OutputSerializer(self.organization).data)

    @extend_schema(tags=["organization"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        org = services.organization_update(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(org).data)


# Members


class MemberListApi(OrgAPIView):
    """The organization's members with their roles and teams."""

    permissions = {"GET": Perm.VIEW_ORG}
    pagination_class = Pagination
    OutputSerializer = MemberSerializer

    @extend_schema(tags=["members"], responses=OutputSerializer(many=True))
    def get(self, request):
        return paginated_response(self, selectors.members_visible_to(self.org_context), self.OutputSerializer)


class MemberDetailApi(OrgAPIView):
    """One member: change the role or the teams, or remove them (anyone may remove themselves)."""

    # Anyone may remove themselves (leave); removing others needs MANAGE_MEMBERS, checked by the service.
    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_MEMBERS, "DELETE": Perm.VIEW_ORG}

    class InputSerializer(serializers.Serializer):
        role = serializers.ChoiceField(choices=Role.choices, required=False)
        teams = serializers.ListField(
            child=serializers.IntegerField(min_value=1), required=False, help_text="The ids of all the member's teams."
        )

        class Meta:
            ref_name = "MemberUpdate"

    OutputSerializer = MemberSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.members_visible_to(self.org_context), pk=pk)

    @extend_schema(tags=["members"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["members"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        membership = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        teams = _scoped_teams(self, data["teams"]) if "teams" in data else None
        # Role and teams change together or not at all.
        actor, ip = self.org_context, self.client_ip()
        with transaction.atomic():
            if "role" in data:
                services.membership_set_role(actor=actor, membership=membership, role=data["role"], ip=ip)
            if teams is not None:
                services.membership_set_teams(actor=actor, membership=membership, teams=teams, ip=ip)
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["members"], responses={204: None})
    def delete(self, request, pk):
        # Looked up among all members: the service answers "not allowed" (403), and a 403 shows nothing.
        membership = self.get_scoped(selectors.member_list(organization=self.organization), pk=pk)
        actor = self.org_context
        if isinstance(request.user, TokenUser):
            # A token acts for the organization, not as the person who created it: it never "leaves",
            # so the service must apply the full rank checks (user=None) even to its creator's membership.
            actor = OrgContext(organization=actor.organization, role=actor.role, user=None)
        services.membership_remove(actor=actor, membership=membership, ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


def _scoped_teams(view: OrgAPIView, ids: list[int]) -> list[Team]:
    wanted = set(ids)
    teams = list(view.scoped(Team).filter(pk__in=wanted))
    if len(teams) != len(wanted):
        raise ApplicationError("Unknown team.", field="teams", code="not_found")
    return teams


# Teams


class TeamListApi(OrgAPIView):
    """The organization's teams; creating one needs manage_members."""

    permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_MEMBERS}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)

        class Meta:
            ref_name = "TeamCreate"

    OutputSerializer = TeamSerializer

    @extend_schema(tags=["teams"], responses=OutputSerializer(many=True))
    def get(self, request):
        return paginated_response(self, selectors.team_list(organization=self.organization), self.OutputSerializer)

    @extend_schema(tags=["teams"], request=InputSerializer, responses={201: OutputSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        team = services.team_create(actor=self.org_context, ip=self.client_ip(), **serializer.validated_data)
        team = selectors.team_list(organization=self.organization).get(pk=team.pk)
        return Response(self.OutputSerializer(team).data, status=status.HTTP_201_CREATED)


class TeamDetailApi(OrgAPIView):
    """One team: rename or delete it (manage_members)."""

    permissions = {"GET": Perm.VIEW_ORG, "PATCH": Perm.MANAGE_MEMBERS, "DELETE": Perm.MANAGE_MEMBERS}

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)

        class Meta:
            ref_name = "TeamRename"

    OutputSerializer = TeamSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.team_list(organization=self.organization), pk=pk)

    @extend_schema(tags=["teams"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["teams"], request=InputSerializer, responses=OutputSerializer)
    def patch(self, request, pk):
        team = self._get(pk)
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.team_rename(actor=self.org_context, team=team, ip=self.client_ip(), **serializer.validated_data)
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["teams"], responses={204: None})
    def delete(self, request, pk):
        services.team_delete(actor=self.org_context, team=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


# Invitations


class InvitationListApi(OrgAPIView):
    """Invitations to join the organization (manage_members)."""

    permissions = {"GET": Perm.MANAGE_MEMBERS, "POST": Perm.MANAGE_MEMBERS}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        email = serializers.EmailField()
        role = serializers.ChoiceField(choices=Role.choices, default=Role.MEMBER)
        team = serializers.IntegerField(min_value=1, required=False, allow_null=True, help_text="A team id to join.")

        class Meta:
            ref_name = "InvitationCreate"

    OutputSerializer = InvitationSerializer

    @extend_schema(tags=["invitations"], responses=OutputSerializer(many=True))
    def get(self, request):
        return paginated_response(self, selectors.invitation_list(organization=self.organization), self.OutputSerializer)

    @extend_schema(
        tags=["invitations"],
        request=InputSerializer,
        responses={201: InvitationLinkSerializer},
        description="Emails a single-use link to the invitee and returns it once (`link`), for inviters who pass it on "
        "themselves; it works only for someone signed in with the invited email. Never returned again.",
    )
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        team = None
        if data.get("team") is not None:
            team = self.scoped(Team).filter(pk=data["team"]).first()
            if team is None:
                raise ApplicationError("Unknown team.", field="team", code="not_found")
        invitation, token = services.invitation_create(
            actor=self.org_context, email=data["email"], role=data["role"], team=team, ip=self.client_ip()
        )
        invitation.link = services.invitation_link(token)
        return Response(InvitationLinkSerializer(invitation).data, status=status.HTTP_201_CREATED)


class InvitationDetailApi(OrgAPIView):
    """One invitation (manage_members)."""

    permissions = {"GET": Perm.MANAGE_MEMBERS, "DELETE": Perm.MANAGE_MEMBERS}
    OutputSerializer = InvitationSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.invitation_list(organization=self.organization), pk=pk)

    @extend_schema(tags=["invitations"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["invitations"], responses={204: None}, description="Revoke the invitation; its link stops working.")
    def delete(self, request, pk):
        services.invitation_revoke(actor=self.org_context, invitation=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


class InvitationResendApi(OrgAPIView):
    """A new link for an open or expired invitation (manage_members)."""

    permissions = {"POST": Perm.MANAGE_MEMBERS}

    @extend_schema(
        tags=["invitations"],
        request=None,
        responses=InvitationLinkSerializer,
        description="A new token and expiry, emailed again and returned once (`link`); the previous link stops working.",
    )
    def post(self, request, pk):
        invitation = self.get_scoped(selectors.invitation_list(organization=self.organization), pk=pk)
        invitation, token = services.invitation_resend(actor=self.org_context, invitation=invitation, ip=self.client_ip())
        invitation.link = services.invitation_link(token)
        return Response(InvitationLinkSerializer(invitation).data)


class InvitationAcceptApi(APIView):
    """Join an organization with an invitation token, as the signed-in person it was sent to.

    Not an OrgAPIView: the invitee may belong to no organization yet, and an API token acts for an
    organization, never as a person, so only a browser session may accept.
    """

    authentication_classes = [SessionAuthentication]
    permission_classes = [IsAuthenticated]

    class InputSerializer(serializers.Serializer):
        token = serializers.CharField(max_length=200, trim_whitespace=True)

        class Meta:
            ref_name = "InvitationAccept"

    class OutputSerializer(serializers.Serializer):
        organization = OrganizationSerializer(read_only=True)
        membership = MemberSerializer(read_only=True, source="*")

        class Meta:
            ref_name = "InvitationAccepted"

    @extend_schema(tags=["invitations"], request=InputSerializer, responses=OutputSerializer)
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        membership = services.invitation_accept(
            token=serializer.validated_data["token"], user=request.user, ip=client_ip(request)
        )
        members = selectors.member_list(organization=membership.organization).select_related("organization")
        membership = members.get(pk=membership.pk)
        return Response(self.OutputSerializer(membership).data)


# API tokens


class ApiTokenListApi(OrgAPIView):
    """Org-scoped REST API tokens (manage_org). Only the creation response holds the secret."""

    permissions = {"GET": Perm.MANAGE_ORG, "POST": Perm.MANAGE_ORG}
    pagination_class = Pagination

    class InputSerializer(serializers.Serializer):
        name = serializers.CharField(max_length=120)
        # Every role but owner; the service refuses owner with a field error on "role".
        role = serializers.ChoiceField(choices=Role.choices, default=Role.ADMIN)

        class Meta:
            ref_name = "ApiTokenCreate"

    class CreatedSerializer(ApiTokenSerializer):
        token = serializers.SerializerMethodField(help_text="The secret, shown this once: store it now.")

        class Meta:
            ref_name = "ApiTokenCreated"

        def get_token(self, obj) -> str:
            return self.context["secret"]

    OutputSerializer = ApiTokenSerializer

    @extend_schema(tags=["api tokens"], responses=OutputSerializer(many=True))
    def get(self, request):
        return paginated_response(self, selectors.api_token_list(organization=self.organization), self.OutputSerializer)

    @extend_schema(tags=["api tokens"], request=InputSerializer, responses={201: CreatedSerializer})
    def post(self, request):
        serializer = self.InputSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        token, secret = services.api_token_create(
            organization=self.organization, actor=self.org_context.user, ip=self.client_ip(), **serializer.validated_data
        )
        return Response(self.CreatedSerializer(token, context={"secret": secret}).data, status=status.HTTP_201_CREATED)


class ApiTokenDetailApi(OrgAPIView):
    """One API token (manage_org)."""

    permissions = {"GET": Perm.MANAGE_ORG, "DELETE": Perm.MANAGE_ORG}
    OutputSerializer = ApiTokenSerializer

    def _get(self, pk):
        return self.get_scoped(selectors.api_token_list(organization=self.organization), pk=pk)

    @extend_schema(tags=["api tokens"], responses=OutputSerializer)
    def get(self, request, pk):
        return Response(self.OutputSerializer(self._get(pk)).data)

    @extend_schema(tags=["api tokens"], responses={204: None}, description="Revoke the token; it stops working at once.")
    def delete(self, request, pk):
        services.api_token_revoke(actor=self.org_context, token=self._get(pk), ip=self.client_ip())
        return Response(status=status.HTTP_204_NO_CONTENT)


# Audit log


class AuditLogListApi(OrgAPIView):
    """The audit log, newest first (view_audit)."""

    permissions = {"GET": Perm.VIEW_AUDIT}
    pagination_class = Pagination
    OutputSerializer = AuditEntrySerializer

    @extend_schema(
        tags=["audit"],
        parameters=[OpenApiParameter("action", str, description="Only entries of this action, e.g. team.create.")],
        responses=OutputSerializer(many=True),
    )
    def get(self, request):
        entries = selectors.audit_log_list(organization=self.organization, action=request.query_params.get("action"))
        return paginated_response(self, entries, self.OutputSerializer)
