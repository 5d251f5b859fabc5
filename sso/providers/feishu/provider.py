"""Feishu and Lark on allauth's Feishu provider, with the host taken from the connection (open.feishu.cn or
open.larksuite.com, overridable for tests) and the work email read from the profile, which allauth drops.

Endpoints (open.feishu.cn/document, "Web app login"): authen/v1/index (authorize), auth/v3/app_access_token/internal,
authen/v1/access_token, authen/v1/user_info (`enterprise_email` needs the contact:user.employee:readonly scope).
"""

from allauth.account.models import EmailAddress
from allauth.socialaccount.providers.feishu.provider import FeishuProvider
from allauth.socialaccount.providers.feishu.views import FeishuOAuth2Adapter


class FeishuAdapter(FeishuOAuth2Adapter):
    @property
    def _base(self) -> str:
        return self.get_provider().app.settings["base_url"].rstrip("/")

    @property
    def authorize_url(self):
        return f"{self._base}/open-apis/authen/v1/index"

    @property
    def access_token_url(self):
        return f"{self._base}/open-apis/authen/v1/access_token"

    @property
    def user_info_url(self):
        return f"{self._base}/open-apis/authen/v1/user_info"

    def get_client(self, request, app):
        client = super().get_client(request, app)
        client.app_access_token_url = f"{self._base}/open-apis/auth/v3/app_access_token/internal/"
        return client


class WorkEmailFeishuProvider(FeishuProvider):
    package = "sso.providers.feishu"
    oauth2_adapter_class = FeishuAdapter

    def extract_common_fields(self, data):
        return {**super().extract_common_fields(data), "email": _work_email(data)}

    def extract_email_addresses(self, data):
        email = _work_email(data)
        return [EmailAddress(email=email, verified=True, primary=True)] if email else []


def _work_email(data: dict) -> str:
    return (data.get("enterprise_email") or data.get("email") or "").strip()

