"""The base of every REST endpoint: the caller's organization, role checks and scoped lookups."""

from rest_framework import exceptions
from rest_framework.views import APIView

from accounts.api.authentication import TokenUser
from accounts.client import client_ip
from accounts.permissions import Perm
from accounts.tenancy import OrgContext, context_for_session, get_scoped_or_404, scoped


def org_context_for_api(request) -> OrgContext:
    user = request.user
    if isinstance(user, TokenUser):
        token = user.token
        return OrgContext(organization=token.organization, role=token.role, user=token.created_by)
    context = context_for_session(request)
    if context is None:
        raise exceptions.PermissionDenied("You are not a member of any organization.")
    return context


class OrgAPIView(APIView):
    """Subclasses set `permissions = {"GET": Perm.VIEW_ORG, "POST": Perm.MANAGE_MEMBERS, ...}`."""

    permissions: dict[str, Perm] = {}

    def initial(self, request, *args, **kwargs):
        super().initial(request, *args, **kwargs)
        self.org_context = org_context_for_api(request)
        needed = self.permissions.get(request.method) or self.permissions.get("*")
        if needed is None and request.method not in ("OPTIONS", "HEAD"):
            raise exceptions.MethodNotAllowed(request.method)
        if needed is not None and not self.org_context.can(needed):
            raise exceptions.PermissionDenied("Your role does not allow this.")

    @property
    def organization(self):
        return self.org_context.organization

    def scoped(self, queryset):
        return scoped(queryset, self.organization)

    def get_scoped(self, queryset, **lookup):
        return get_scoped_or_404(queryset, self.organization, **lookup)

    def client_ip(self):
        return client_ip(self.request)
