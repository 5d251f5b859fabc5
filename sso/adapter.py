"""allauth's social-account adapter, fed by our SsoConnection table instead of SocialApp rows or settings.

Which organization a sign-in belongs to: the OIDC callback URL names it (`org-<slug>`); for the shared
Feishu/DingTalk/WeCom callbacks it is the one the sign-in started for (`SSO_ORG_SESSION_KEY`, set by
sso.views.start). allauth then checks state, PKCE and tokens; sso.services decides who gets in.
"""

from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from allauth.socialaccount.models import SocialApp
from django.conf import settings
from django.shortcuts import render
from django.utils.translation import gettext as _

from accounts.client import client_ip
from keys import encryption
from sso import kinds, selectors, services
from sso.egress import egress_session

SSO_ORG_SESSION_KEY = "tollgate_sso_org_id"


def social_app(connection) -> SocialApp:
    """An unsaved SocialApp for allauth, built from the connection (the secret decrypted only here)."""
    urls = kinds.base_urls(connection.kind)
    if connection.kind == kinds.OIDC:
        app_settings = {"server_url": connection.issuer_url, "oauth_pkce_enabled": True, "fetch_userinfo": True}
    else:
        app_settings = {"base_url": urls["api"], "login_url": urls.get("login", ""), "agent_id": connection.agent_id}
    return SocialApp(
        provider=kinds.ALLAUTH_PROVIDER[connection.kind],
        provider_id=connection.provider_id,
        name=connection.button_name,
        client_id=connection.client_id,
        secret=encryption.decrypt(connection.client_secret_encrypted),
        settings=app_settings,
    )


def _connection_for(request, provider: str | None):
    if provider and provider.startswith(selectors.PROVIDER_ID_PREFIX):
        return selectors.connection_for_provider_id(provider)
    org_id = request.session.get(SSO_ORG_SESSION_KEY) if request is not None else None
    connection = selectors.connection_for_org(org_id) if org_id else None
    return connection if connection is not None and connection.enabled else None


def refusal_page(request, message: str, *, connection=None, status: int = 403):
    return render(request, "sso/refused.html", {"message": message, "connection": connection}, status=status)


class SsoSocialAccountAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None):
        connection = _connection_for(request, provider)
        if connection is None:
            return []
        app = social_app(connection)
        if provider and provider not in (app.provider, app.provider_id):
            return []
        if client_id and client_id != app.client_id:
            return []
        return [app]

    def get_requests_session(self):
        return egress_session(settings.SOCIALACCOUNT_REQUESTS_TIMEOUT)

    def is_open_for_signup(self, request, sociallogin):
        return True  # sso.services.sso_sign_in has decided before allauth asks

    def pre_social_login(self, request, sociallogin):
        connection = selectors.connection_for_provider_id(sociallogin.account.provider)
        if connection is None:  # disabled or removed while the user was at the provider
            raise ImmediateHttpResponse(refusal_page(request, _("Single sign-on is not available for this organization.")))
        email = _email_of(sociallogin)
        claims = sociallogin.account.extra_data
        if isinstance(claims, dict) and claims.get("userinfo", claims).get("email_verified") is False:
            self._refuse(request, connection, email, services.SsoRefused(
                _("%(provider)s has not verified %(email)s.") % {"provider": connection.button_name, "email": email},
                reason="email_unverified",
            ))
        linked = sociallogin.user if sociallogin.is_existing else None
        try:
            user, _membership = services.sso_sign_in(
                connection=connection, email=email, name=_name_of(sociallogin), linked_user=linked, ip=client_ip(request)
            )
        except services.SsoRefused as exc:
            self._refuse(request, connection, email, exc)
        if linked is None:
            sociallogin.user = user
            sociallogin.save(request, connect=True)
        sociallogin.tollgate_connection = connection  # for the login audit (sso.receivers)

    def _refuse(self, request, connection, email, exc):
        services.sso_refusal_record(connection=connection, email=email, reason=exc.reason, ip=client_ip(request))
        raise ImmediateHttpResponse(refusal_page(request, exc.message, connection=connection, status=exc.status))

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        connection = selectors.connection_for_provider_id(getattr(provider.app, "provider_id", "") or "") if provider else None
        if connection is not None:
            reason = "cancelled" if str(error) == "cancelled" else "provider_error"
            services.sso_refusal_record(connection=connection, email="", reason=reason, ip=client_ip(request))
        raise ImmediateHttpResponse(
            refusal_page(request, _("Signing in with %(provider)s failed. Try again, or ask your administrator to check the single sign-on settings.") % {"provider": connection.button_name if connection else _("the identity provider")}, connection=connection, status=400)
        )


def _email_of(sociallogin) -> str:
    addresses = [a.email for a in sociallogin.email_addresses if a.email]
    return (addresses[0] if addresses else getattr(sociallogin.user, "email", "") or "").strip()


def _name_of(sociallogin) -> str:
    common = sociallogin.account.get_provider().extract_common_fields(sociallogin.account.extra_data) or {}
    return str(common.get("name") or "")
