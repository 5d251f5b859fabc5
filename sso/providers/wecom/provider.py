"""WeCom (企业微信) web login; allauth has no provider for it, so this is one on allauth's OAuth2 base.

Documented flow (developer.work.weixin.qq.com/document/path/98151, 98176, 91437, 90196):
1. the browser goes to login.work.weixin.qq.com/wwlogin/sso/login?login_type=CorpApp&appid=<corp id>
   &agentid=<agent id>&redirect_uri=…&state=…, and comes back with ?code=…&state=…;
2. the server takes the application's token: qyapi.weixin.qq.com/cgi-bin/gettoken?corpid=…&corpsecret=…;
3. resolves the code to the member: cgi-bin/auth/getuserinfo?access_token=…&code=… ({"userid": …});
4. reads the member: cgi-bin/user/get?access_token=…&userid=… (`biz_mail`, else `email`).
Every answer carries `errcode`; anything but 0 is a refusal.
"""

from allauth.account.models import EmailAddress
from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.providers.base import ProviderAccount
from allauth.socialaccount.providers.oauth2.client import OAuth2Client, OAuth2Error
from allauth.socialaccount.providers.oauth2.provider import OAuth2Provider
from allauth.socialaccount.providers.oauth2.views import OAuth2Adapter
from django.utils.http import urlencode


def _get_json(url: str, params: dict) -> dict:
    with get_adapter().get_requests_session() as session:
        response = session.get(url, params=params)
        response.raise_for_status()
        data = response.json()
    if not isinstance(data, dict) or data.get("errcode", 0) != 0:
        code = data.get("errcode") if isinstance(data, dict) else None
        raise OAuth2Error(f"WeCom refused the request (errcode {code}).")
    return data


class WeComClient(OAuth2Client):
    def __init__(self, *args, agent_id: str, api_url: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.agent_id = agent_id
        self.api_url = api_url

    def get_redirect_url(self, authorization_url, scope, extra_params):
        params = {"login_type": "CorpApp", "appid": self.consumer_key, "agentid": self.agent_id, "redirect_uri": self.callback_url}
        if self.state:
            params["state"] = self.state
        params.update(extra_params)
        return f"{authorization_url}?{urlencode(params)}"

    def get_access_token(self, code, pkce_code_verifier=None, extra_data=None):
        data = _get_json(f"{self.api_url}/cgi-bin/gettoken", {"corpid": self.consumer_key, "corpsecret": self.consumer_secret})
        if not data.get("access_token"):
            raise OAuth2Error("WeCom returned no access token.")
        return {"access_token": data["access_token"], "expires_in": data.get("expires_in"), "code": code}


class WeComAdapter(OAuth2Adapter):
    provider_id = "wecom"

    @property
    def _settings(self) -> dict:
        return self.get_provider().app.settings

    @property
    def authorize_url(self):
        return self._settings["login_url"].rstrip("/") + "/wwlogin/sso/login"

    @property
    def access_token_url(self):
        return self._settings["base_url"].rstrip("/") + "/cgi-bin/gettoken"

    def get_client(self, request, app):
        return WeComClient(
            request, app.client_id, app.secret, "GET", self.access_token_url, self.get_callback_url(request, app),
            agent_id=self._settings.get("agent_id", ""), api_url=self._settings["base_url"].rstrip("/"),
        )

    def complete_login(self, request, app, token, **kwargs):
        api = self._settings["base_url"].rstrip("/")
        who = _get_json(f"{api}/cgi-bin/auth/getuserinfo", {"access_token": token.token, "code": kwargs["response"]["code"]})
        if not who.get("userid"):
            raise OAuth2Error("Only members of the WeCom organization can sign in.")  # external contacts get an openid
        profile = _get_json(f"{api}/cgi-bin/user/get", {"access_token": token.token, "userid": who["userid"]})
        return self.get_provider().sociallogin_from_response(request, profile)


class WeComAccount(ProviderAccount):
    def to_str(self):
        return self.account.extra_data.get("name") or super().to_str()


class WeComProvider(OAuth2Provider):
    id = "wecom"
    name = "WeCom"
    package = "sso.providers.wecom"
    account_class = WeComAccount
    oauth2_adapter_class = WeComAdapter

    def extract_uid(self, data):
        return str(data["userid"])

    def extract_common_fields(self, data):
        return {"name": data.get("name"), "email": _work_email(data)}

    def extract_email_addresses(self, data):
        email = _work_email(data)
        return [EmailAddress(email=email, verified=True, primary=True)] if email else []


def _work_email(data: dict) -> str:
    return (data.get("biz_mail") or data.get("email") or "").strip()
