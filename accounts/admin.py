"""Django admin for operators. Secrets never appear: only visible prefixes, never a hash or a token.

Invitations, API tokens and the audit log are read-only here; revoking goes through the same services
the dashboard and the REST API use, so it is audited like any other change.
"""

from django.contrib import admin, messages
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.utils.translation import gettext_lazy as _

from accounts import services
from accounts.client import client_ip
from accounts.forms import AdminLoginForm
from accounts.errors import ApplicationError
from accounts.models import ApiToken, AuditLog, Invitation, Membership, Organization, Role, Team, User
from accounts.tenancy import OrgContext


def _operator_context(request, organization) -> OrgContext:
    """An operator acting in the admin counts as an owner of the object's organization."""
    return OrgContext(organization=organization, role=Role.OWNER, user=request.user)


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


@admin.register(User)
class UserAdmin(DjangoUserAdmin):
    ordering = ["email"]
    list_display = ["email", "name", "is_active", "is_staff", "date_joined"]
    list_filter = ["is_active", "is_staff", "is_superuser"]
    search_fields = ["email", "name"]
    readonly_fields = ["date_joined", "last_login"]
    # The password field is Django's read-only hash summary with a link to the change form.
    fieldsets = [
        (None, {"fields": ["email", "password"]}),
        (_("Profile"), {"fields": ["name"]}),
        (_("Permissions"), {"fields": ["is_active", "is_staff", "is_superuser", "groups", "user_permissions"]}),
        (_("Dates"), {"fields": ["last_login", "date_joined"]}),
    ]
    add_fieldsets = [(None, {"classes": ["wide"], "fields": ["email", "password1", "password2"]})]


class MembershipInline(admin.TabularInline):
    model = Membership
    extra = 0
    fields = ["user", "role", "created_at"]
    readonly_fields = ["user", "role", "created_at"]
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Organization)
class OrganizationAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "time_zone", "currency", "created_at"]
    search_fields = ["name", "slug"]
    readonly_fields = ["slug", "created_at"]
    inlines = [MembershipInline]


@admin.register(Team)
class TeamAdmin(admin.ModelAdmin):
    list_display = ["name", "organization", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]


@admin.register(Membership)
class MembershipAdmin(ReadOnlyAdmin):
    # Roles change through the dashboard or the API, where the rank and last-owner rules apply.
    list_display = ["user", "organization", "role", "created_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["user", "organization"]
    search_fields = ["user__email", "organization__name"]


@admin.register(Invitation)
class InvitationAdmin(ReadOnlyAdmin):
    list_display = ["email", "organization", "role", "created_at", "expires_at", "accepted_at", "revoked_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["organization"]
    search_fields = ["email", "organization__name"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.change_invitation")

    @admin.action(description=_("Revoke selected invitations"), permissions=["revoke"])
    def revoke(self, request, queryset):
        for invitation in queryset.select_related("organization").filter(accepted_at=None, revoked_at=None):
            try:
                services.invitation_revoke(
                    actor=_operator_context(request, invitation.organization), invitation=invitation, ip=client_ip(request)
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, _("Revoked."), messages.SUCCESS)


@admin.register(ApiToken)
class ApiTokenAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "organization", "role", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["role", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "prefix", "organization__name"]
    exclude = ["token_hash"]
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("accounts.change_apitoken")

    @admin.action(description=_("Revoke selected tokens"), permissions=["revoke"])
    def revoke(self, request, queryset):
        for token in queryset.select_related("organization").filter(revoked_at=None):
            try:
                services.api_token_revoke(
                    actor=_operator_context(request, token.organization), token=token, ip=client_ip(request)
                )
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, _("Revoked."), messages.SUCCESS)


@admin.register(AuditLog)
class AuditLogAdmin(ReadOnlyAdmin):
    list_display = ["created_at", "organization", "actor_label", "action", "target_label", "ip"]
    list_filter = ["action", "organization"]
    list_select_related = ["organization"]
    search_fields = ["action", "actor_label", "target_label"]
    date_hierarchy = "created_at"


admin.site.login_form = AdminLoginForm  # failed admin logins count against the same throttle as the dashboard's
