"""Django admin: connections are read-only here (the dashboard and API own them, with checks and audit).

allauth's SocialApp and SocialToken admins are removed: apps come from SsoConnection (sso.adapter), and
tokens are not stored, so those tables stay empty and editing them would change nothing.
"""

from allauth.socialaccount.models import SocialApp, SocialToken
from django.contrib import admin

from sso.models import SsoConnection

for model in (SocialApp, SocialToken):
    if admin.site.is_registered(model):
        admin.site.unregister(model)


@admin.register(SsoConnection)
class SsoConnectionAdmin(admin.ModelAdmin):
    list_display = ("organization", "kind", "client_id", "enabled", "require_sso", "updated_at")
    list_filter = ("kind", "enabled", "require_sso")
    readonly_fields = [field.name for field in SsoConnection._meta.fields if field.name != "client_secret_encrypted"]
    exclude = ("client_secret_encrypted",)

    def has_add_permission(self, request):
        return False

    def has_change_permission(self, request, obj=None):
        return False
