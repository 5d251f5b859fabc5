"""Django admin for operators: keys, credentials, models and deployments, read-only.

Changes go through the dashboard or the REST API, where the services validate, audit and tell the relay
to drop its caches; the one write here, revoking keys, calls the same service. Secrets never appear:
no key hash and no encrypted column, only a key's visible prefix and a credential's last 4 characters.
"""

from django.contrib import admin, messages
from django.utils.translation import gettext_lazy as _

from accounts.admin import ReadOnlyAdmin
from accounts.client import client_ip
from accounts.errors import ApplicationError
from accounts.models import Role
from accounts.tenancy import OrgContext
from keys import services
from keys.models import Deployment, Model, ProviderCredential, VirtualKey


@admin.register(VirtualKey)
class VirtualKeyAdmin(ReadOnlyAdmin):
    list_display = ["name", "prefix", "organization", "team", "user", "expires_at", "revoked_at", "created_at"]
    list_filter = ["organization"]
    list_select_related = ["organization", "team", "user"]
    search_fields = ["name", "prefix", "organization__name", "user__email"]
    exclude = ["key_hash", "previous_key_hash"]
    actions = ["revoke"]

    def has_revoke_permission(self, request):
        return request.user.has_perm("keys.change_virtualkey")

    @admin.action(description=_("Revoke selected keys"), permissions=["revoke"])
    def revoke(self, request, queryset):
        for key in queryset.select_related("organization").filter(revoked_at=None):
            # An operator acting in the admin counts as an owner of the key's organization.
            actor = OrgContext(organization=key.organization, role=Role.OWNER, user=request.user)
            try:
                services.virtual_key_revoke(actor=actor, key=key, ip=client_ip(request))
            except ApplicationError as exc:
                self.message_user(request, exc.message, messages.ERROR)
                return
        self.message_user(request, _("Revoked."), messages.SUCCESS)


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(ReadOnlyAdmin):
    list_display = ["name", "provider", "organization", "base_url", "api_key_hint", "created_at"]
    list_filter = ["provider", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]
    exclude = ["api_key_encrypted", "extra_headers_encrypted"]


class DeploymentInline(admin.TabularInline):
    model = Deployment
    extra = 0
    fields = ["name", "credential", "upstream_model", "weight", "order", "is_active"]
    readonly_fields = fields
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None):
        return False


@admin.register(Model)
class ModelAdmin(ReadOnlyAdmin):
    list_display = ["name", "organization", "routing", "is_active", "created_at"]
    list_filter = ["routing", "is_active", "organization"]
    list_select_related = ["organization"]
    search_fields = ["name", "organization__name"]
    inlines = [DeploymentInline]


@admin.register(Deployment)
class DeploymentAdmin(ReadOnlyAdmin):
    list_display = ["__str__", "model", "credential", "upstream_model", "weight", "order", "is_active"]
    list_filter = ["is_active", "organization"]
    list_select_related = ["model", "credential"]
    search_fields = ["upstream_model", "name", "model__name", "credential__name"]
