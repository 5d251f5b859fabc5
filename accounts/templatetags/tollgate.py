"""Template helpers: `{% if org_context|can:"manage_members" %}` (templates cannot call with arguments)."""

from django import template

from accounts.models import Role
from accounts.permissions import Perm

register = template.Library()


@register.filter
def can(org_context, perm: str) -> bool:
    """Whether the current role holds `perm`; an unknown name raises so that a typo cannot hide a link."""
    perm = Perm(perm)
    return bool(org_context) and org_context.can(perm)


@register.filter
def role_label(role: str) -> str:
    """The translated name of a role value ("admin" -> "Admin")."""
    return Role(role).label if role in Role.values else role
