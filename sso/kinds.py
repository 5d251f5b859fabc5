"""The identity providers an organization may connect, and where each one's endpoints live.

Base URLs come from settings (TOLLGATE_SSO_*_URL) so tests can point them at loopback mocks; an
operator never needs to change them. Feishu and Lark are one protocol on two hosts.
"""

from django.conf import settings
from django.utils.translation import gettext_lazy as _

OIDC = "oidc"
FEISHU = "feishu"
LARK = "lark"
DINGTALK = "dingtalk"
WECOM = "wecom"

CHOICES = [
    (OIDC, _("OpenID Connect")),
    (FEISHU, _("Feishu")),
    (LARK, _("Lark")),
    (DINGTALK, _("DingTalk")),
    (WECOM, _("WeCom")),
]

# Our kind -> the allauth provider id (sso/provider.py registers the classes).
ALLAUTH_PROVIDER = {OIDC: "openid_connect", FEISHU: "feishu", LARK: "feishu", DINGTALK: "dingtalk", WECOM: "wecom"}


def base_urls(kind: str) -> dict[str, str]:
    """The endpoints' base URLs for a kind (empty for OIDC: discovery names them)."""
    if kind == FEISHU:
        return {"api": settings.TOLLGATE_SSO_FEISHU_URL}
    if kind == LARK:
        return {"api": settings.TOLLGATE_SSO_LARK_URL}
    if kind == DINGTALK:
        return {"api": settings.TOLLGATE_SSO_DINGTALK_API_URL, "login": settings.TOLLGATE_SSO_DINGTALK_LOGIN_URL}
    if kind == WECOM:
        return {"api": settings.TOLLGATE_SSO_WECOM_API_URL, "login": settings.TOLLGATE_SSO_WECOM_LOGIN_URL}
    return {}
