from allauth.urls import build_provider_urlpatterns
from django.urls import include, path

from sso import views

urlpatterns = [
    # Ahead of accounts.urls: the same login page, refusing passwords where SSO is required.
    path("login/", views.LoginView.as_view(), name="login"),
    path("sso/<slug:slug>/", views.sso_login, name="sso_login"),
    path("sso/<slug:slug>/start/", views.sso_start, name="sso_start"),
    path("settings/sso/", views.sso_settings, name="sso_settings"),
    path("settings/sso/delete/", views.sso_delete, name="sso_delete"),
    # allauth's provider callbacks only (/accounts/oidc/org-<slug>/login/callback/, /accounts/feishu/…);
    # its account pages (sign-up, password) are not mounted.
    path("accounts/", include(build_provider_urlpatterns())),
]
