"""The role matrix: what each role may do, in one table, enforced through `has_perm` only."""

from enum import StrEnum

from accounts.models import Role


class Perm(StrEnum):
    VIEW_ORG = "view_org"  # read configuration: models, teams, the budgets that apply to oneself, channel names
    VIEW_MEMBERS = "view_members"  # every member's email and role (without it: oneself only)
    VIEW_USAGE = "view_usage"  # every member's usage and spend: every key and budget by name
    VIEW_OWN_USAGE = "view_own_usage"
    MANAGE_OWN_KEYS = "manage_own_keys"
    MANAGE_KEYS = "manage_keys"  # every key of the organization
    MANAGE_PROVIDERS = "manage_providers"  # credentials, models, deployments, prices
    MANAGE_BUDGETS = "manage_budgets"  # budgets and alert channels, whose addresses only this role sees
    MANAGE_MEMBERS = "manage_members"  # invitations, roles, teams
    MANAGE_ORG = "manage_org"  # organization settings and admin API tokens
    VIEW_AUDIT = "view_audit"
    MANAGE_OWNERS = "manage_owners"  # grant or remove the owner role


_VIEWER = {Perm.VIEW_ORG, Perm.VIEW_MEMBERS, Perm.VIEW_USAGE, Perm.VIEW_OWN_USAGE}
_MEMBER = {Perm.VIEW_ORG, Perm.VIEW_OWN_USAGE, Perm.MANAGE_OWN_KEYS}
_ADMIN = set(Perm) - {Perm.MANAGE_OWNERS}

ROLE_PERMISSIONS: dict[str, frozenset[Perm]] = {
    Role.OWNER: frozenset(Perm),
    Role.ADMIN: frozenset(_ADMIN),
    Role.MEMBER: frozenset(_MEMBER),
    Role.VIEWER: frozenset(_VIEWER),
}

# Higher rank may act on lower ranks; used to stop an admin from demoting an owner.
ROLE_RANK = {Role.VIEWER: 0, Role.MEMBER: 1, Role.ADMIN: 2, Role.OWNER: 3}


def has_perm(role: str | None, perm: Perm) -> bool:
    return role is not None and perm in ROLE_PERMISSIONS.get(role, frozenset())
