"""Reads for organizations, members, teams, invitations, API tokens and the audit log.

Every selector takes the organization explicitly, so a caller cannot forget tenancy, and joins what
its callers display (one query per list, however long).
"""

from django.db.models import Count, Prefetch, QuerySet

from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Team
from accounts.permissions import Perm


def member_list(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .prefetch_related(Prefetch("teams", queryset=Team.objects.order_by("name")))
        .order_by("created_at", "pk")
    )


def members_visible_to(org_context) -> QuerySet[Membership]:
    """`member_list` as the caller may see it: everyone with view_members, else only their own membership
    (a member is not shown every colleague's email)."""
    members = member_list(organization=org_context.organization)
    if org_context.can(Perm.VIEW_MEMBERS):
        return members
    return members.filter(user=org_context.user) if org_context.user is not None else members.none()


def team_list(*, organization: Organization) -> QuerySet[Team]:
    return Team.objects.filter(organization=organization).annotate(member_count=Count("memberships")).order_by("name")


def invitation_list(*, organization: Organization) -> QuerySet[Invitation]:
    return (
        Invitation.objects.filter(organization=organization)
        .select_related("team", "invited_by", "accepted_by")
        .order_by("-created_at", "-pk")
    )


def api_token_list(*, organization: Organization) -> QuerySet[ApiToken]:
    return ApiToken.objects.filter(organization=organization).select_related("created_by").order_by("-created_at", "-pk")


def audit_log_list(*, organization: Organization, action: str | None = None) -> QuerySet[AuditLog]:
    entries = AuditLog.objects.filter(organization=organization).select_related("actor")
    if action:
        entries = entries.filter(action=action)
    return entries.order_by("-created_at", "-id")
