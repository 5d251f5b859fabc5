"""Feishu, Lark, DingTalk and WeCom sign-in through allauth, against loopback mocks of their documented endpoints."""

import pytest

from accounts.models import AuditLog, Membership, Role, User
from accounts.tenancy import OrgContext
from allauth.socialaccount.models import SocialAccount
from sso import services
from tests.sso import china_mock as m
from tests.sso.conftest import sign_in, start

pytestmark = pytest.mark.django_db


@pytest.fixture
def mock(settings, loopback_egress):
    server = m.ChinaMock()
    for name in ("FEISHU_URL", "LARK_URL", "DINGTALK_API_URL", "DINGTALK_LOGIN_URL", "WECOM_API_URL", "WECOM_LOGIN_URL"):
        setattr(settings, f"TOLLGATE_SSO_{name}", server.url)
    yield server
    server.stop()


AUTHORIZE_PATHS = {"/open-apis/authen/v1/index", "/oauth2/auth", "/wwlogin/sso/login"}
CONNECTIONS = {
    "feishu": {"client_id": m.APP_ID, "client_secret": m.APP_SECRET},
    "lark": {"client_id": m.APP_ID, "client_secret": m.APP_SECRET},
    "dingtalk": {"client_id": m.DING_ID, "client_secret": m.DING_SECRET},
    "wecom": {"client_id": m.CORP_ID, "client_secret": m.CORP_SECRET, "agent_id": m.AGENT_ID},
}
EXPECTED = {
    "feishu": ("lilei@acme.test", "Li Lei", "ou_1"),
    "lark": ("lilei@acme.test", "Li Lei", "ou_1"),
    "dingtalk": ("hanmeimei@acme.test", "Han Meimei", "ding-open-1"),
    "wecom": ("zhangsan@acme.test", "Zhang San", "zhangsan"),
}


def connect(org, owner, kind, **overrides):
    fields = {"allowed_domains": ["acme.test"], "default_role": Role.VIEWER, **CONNECTIONS[kind], **overrides}
    return services.sso_connection_save(actor=OrgContext(organization=org, role=Role.OWNER, user=owner), kind=kind, **fields)


@pytest.mark.parametrize("kind", ["feishu", "lark", "dingtalk", "wecom"])
def test_sign_in_joins_the_organization(client, org, owner, mock, kind):
    connect(org, owner, kind)
    response = sign_in(client, org)
    assert response.status_code == 302 and response["Location"] == "/", response.content[:300]
    email, name, uid = EXPECTED[kind]
    user = User.objects.get(email=email)
    assert user.name == name
    assert Membership.objects.get(organization=org, user=user).role == Role.VIEWER
    assert SocialAccount.objects.get(user=user).uid == uid
    assert AuditLog.objects.filter(organization=org, action="sso.login", actor=user).exists()
    # The redirect URI to register at the provider (Lark shares Feishu's).
    slug = {"lark": "feishu"}.get(kind, kind)
    authorize = next(data for method, path, data in mock.calls if method == "GET" and path in AUTHORIZE_PATHS)
    assert authorize["redirect_uri"] == f"http://testserver/accounts/{slug}/login/callback/"
    # The documented endpoints were the ones called.
    paths = {path for _method, path, _data in mock.calls}
    assert {
        "feishu": {"/open-apis/authen/v1/index", "/open-apis/auth/v3/app_access_token/internal/", "/open-apis/authen/v1/access_token", "/open-apis/authen/v1/user_info"},
        "lark": {"/open-apis/authen/v1/index", "/open-apis/authen/v1/user_info"},
        "dingtalk": {"/oauth2/auth", "/v1.0/oauth2/userAccessToken", "/v1.0/contact/users/me"},
        "wecom": {"/wwlogin/sso/login", "/cgi-bin/gettoken", "/cgi-bin/auth/getuserinfo", "/cgi-bin/user/get"},
    }[kind] <= paths


@pytest.mark.parametrize("kind", ["feishu", "dingtalk", "wecom"])
def test_a_wrong_secret_is_refused(client, org, owner, mock, kind):
    connect(org, owner, kind, client_secret="not-the-secret")
    response = sign_in(client, org)
    assert response.status_code == 400 and "failed" in response.content.decode()
    assert not User.objects.filter(email=EXPECTED[kind][0]).exists()
    assert AuditLog.objects.get(organization=org, action="sso.login_refused").data["reason"] == "provider_error"


@pytest.mark.parametrize("kind", ["feishu", "dingtalk", "wecom"])
def test_a_domain_not_allowed_is_refused(client, org, owner, mock, kind):
    connect(org, owner, kind, allowed_domains=["example.cn"])
    response = sign_in(client, org)
    assert response.status_code == 403
    assert f"{EXPECTED[kind][0]} cannot sign in to {org.name}: only addresses at example.cn can." in response.content.decode()
    assert not User.objects.filter(email=EXPECTED[kind][0]).exists()


def test_a_profile_without_email_is_refused_with_the_reason(client, org, owner, mock):
    connect(org, owner, "feishu")
    mock.users["feishu"] = {"open_id": "ou_2", "name": "No Mail"}
    response = sign_in(client, org)
    assert response.status_code == 403 and "did not share an email address" in response.content.decode()


def test_feishu_and_lark_use_their_own_hosts(settings, org, owner, mock, client):
    settings.TOLLGATE_SSO_LARK_URL = "https://open.larksuite.com"
    connect(org, owner, "lark")
    url = start(client, org)
    assert url.startswith("https://open.larksuite.com/open-apis/authen/v1/index?")
    assert f"app_id={m.APP_ID}" in url


@pytest.mark.parametrize("provider", ["feishu", "dingtalk", "wecom"])
def test_provider_urls_without_a_started_sign_in_are_not_found(client, provider):
    assert client.get(f"/accounts/{provider}/login/").status_code == 404
    assert client.get(f"/accounts/{provider}/login/callback/?code=x&state=y").status_code == 404
