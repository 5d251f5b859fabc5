"""OpenID Connect on allauth's provider, with the checks it leaves out.

allauth skips the ID token's signature when the token came straight from the token endpoint (OIDC Core
3.1.3.7 allows it over TLS) and sends no nonce. Tollgate always verifies the signature against the
issuer's JWKS, sends a nonce and requires it back, requires the discovery document's issuer to be the
configured one, and the userinfo `sub` to be the ID token's: a forged, replayed or mixed-up token is refused.
"""

import secrets

from allauth.socialaccount.internal import jwtkit
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from allauth.socialaccount.providers.openid_connect.provider import OpenIDConnectProvider
from allauth.socialaccount.providers.openid_connect.views import OpenIDConnectOAuth2Adapter


def _same_issuer(a: str, b: str) -> bool:
    return a.rstrip("/") == b.rstrip("/")


class StrictOIDCAdapter(OpenIDConnectOAuth2Adapter):
    state: dict = {}

    @property
    def openid_config(self):
        config = super().openid_config
        expected = self.get_provider().app.settings["server_url"]
        if not _same_issuer(str(config.get("issuer", "")), expected):
            raise OAuth2Error("The discovery document names another issuer.")
        return config

    def _decode_id_token(self, app, id_token: str) -> dict:
        claims = jwtkit.verify_and_decode(
            credential=id_token,
            keys_url=self.openid_config["jwks_uri"],
            issuer=self.openid_config["issuer"],
            audience=app.client_id,
            lookup_kid=jwtkit.lookup_kid_jwk,
            verify_signature=True,
        )
        nonce = self.state.get("nonce")
        if not nonce or not secrets.compare_digest(str(claims.get("nonce", "")), nonce):
            raise OAuth2Error("The ID token's nonce is not the one this sign-in sent.")
        return claims

    def complete_login(self, request, app, token, **kwargs):
        if not kwargs["response"].get("id_token"):
            raise OAuth2Error("The token endpoint returned no ID token.")
        login = super().complete_login(request, app, token, **kwargs)
        data = login.account.extra_data
        if "userinfo" in data and str(data["userinfo"].get("sub")) != str(data["id_token"].get("sub")):
            raise OAuth2Error("The userinfo subject is not the ID token's.")
        return login


class StrictOIDCProvider(OpenIDConnectProvider):
    package = "sso.providers.oidc"
    oauth2_adapter_class = StrictOIDCAdapter

    def redirect(self, request, process, next_url=None, data=None, **kwargs):
        nonce = secrets.token_urlsafe(32)
        auth_params = kwargs.pop("auth_params", None) or self.get_auth_params()
        auth_params["nonce"] = nonce
        return super().redirect(request, process, next_url, data, auth_params=auth_params, nonce=nonce, **kwargs)

    def verify_token(self, request, token):
        raise OAuth2Error("Token sign-in is not offered.")  # only the code flow, with nonce and PKCE
