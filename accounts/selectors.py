"""Reads for organizations, members, teams, invitations, API tokens and the audit log.

Every selector takes the organization explicitly, so a caller cannot forget tenancy, and joins what
its callers display (one query per list, however long).
"""

from django.db.models import Count, Prefetch, QuerySet

from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Team


def member_list(*, organization: Organization) -> QuerySet[Membership]:
    return (
        Membership.objects.filter(organization=organization)
        .select_related("user")
        .prefetch_related(Prefetch("teams", queryset=Team.objects.order_by("name")))
        .order_by("created_at", "pk")
    )


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
