"""DingTalk on allauth's provider, with hosts from settings (tests) and the email read from the profile.

Endpoints (open.dingtalk.com, "Log in to third-party websites"): login.dingtalk.com/oauth2/auth (authorize,
answers with `authCode`), api.dingtalk.com/v1.0/oauth2/userAccessToken, api.dingtalk.com/v1.0/contact/users/me
(`email` needs the Contact.User.mobile/email permission).
"""

from allauth.account.models import EmailAddress
from allauth.socialaccount.providers.dingtalk.provider import DingTalkProvider
from allauth.socialaccount.providers.dingtalk.views import DingTalkOAuth2Adapter


class DingTalkAdapter(DingTalkOAuth2Adapter):
    @property
    def _settings(self) -> dict:
        return self.get_provider().app.settings

    @property
    def authorize_url(self):
        return self._settings["login_url"].rstrip("/") + "/oauth2/auth"

    @property
    def access_token_url(self):
        return self._settings["base_url"].rstrip("/") + "/v1.0/oauth2/userAccessToken"

    @property
    def profile_url(self):
        return self._settings["base_url"].rstrip("/") + "/v1.0/contact/users/me"


class EmailDingTalkProvider(DingTalkProvider):
    package = "sso.providers.dingtalk"
    oauth2_adapter_class = DingTalkAdapter

    def extract_common_fields(self, data):
        return {**super().extract_common_fields(data), "email": (data.get("email") or "").strip()}

    def extract_email_addresses(self, data):
        email = (data.get("email") or "").strip()
        return [EmailAddress(email=email, verified=True, primary=True)] if email else []
