"""Tenancy as a mechanism: the current organization of a request, and scoped lookups.

Every view and API endpoint reads objects through `scoped()` / `get_scoped_or_404()`, so an
object of another organization is simply not found (404), never "forbidden".
"""

from dataclasses import dataclass

from django.db.models import Model, QuerySet
from django.http import Http404

from accounts.models import Membership, Organization
from accounts.permissions import Perm, has_perm

SESSION_ORG_KEY = "tollgate_org_id"


@dataclass(frozen=True)
class OrgContext:
    organization: Organization
    role: str
    user: object | None  # None for an org API token acting on its own

    def can(self, perm: Perm) -> bool:
        return has_perm(self.role, perm)


def memberships_of(user) -> QuerySet[Membership]:
    return Membership.objects.filter(user=user).select_related("organization").order_by("organization__name")


def context_for_session(request) -> OrgContext | None:
    """The organization chosen in the session, or the user's first one."""
    user = getattr(request, "user", None)
    if user is None or not user.is_authenticated:
        return None
    memberships = memberships_of(user)
    chosen = request.session.get(SESSION_ORG_KEY)
    membership = (memberships.filter(organization_id=chosen).first() if chosen else None) or memberships.first()
    if membership is None:
        return None
    return OrgContext(organization=membership.organization, role=membership.role, user=user)


def scoped(queryset: QuerySet | type[Model], organization: Organization) -> QuerySet:
    if isinstance(queryset, type):
        queryset = queryset._default_manager.all()
    return queryset.filter(organization=organization)


def get_scoped_or_404(queryset: QuerySet | type[Model], organization: Organization, **lookup):
    try:
        return scoped(queryset, organization).get(**lookup)
    except (scoped(queryset, organization).model.DoesNotExist, ValueError, TypeError) as exc:
        raise Http404("Not found.") from exc
