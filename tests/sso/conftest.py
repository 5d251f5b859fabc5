"""Fixtures for single sign-on: the loopback test IdP and an organization connected to it."""

from urllib.parse import urlsplit

import pytest
from django.utils.html import escape
import requests

from accounts.models import Role
from accounts.tenancy import OrgContext
from sso import services
from tests.sso.idp import TestIdP


@pytest.fixture
def idp():
    server = TestIdP().start()
    yield server
    server.stop()


@pytest.fixture
def loopback_egress(settings):
    """The IdP lives on 127.0.0.1, which the egress rules refuse unless allow-listed (as an intranet IdP would be)."""
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["127.0.0.1"]
    settings.TOLLGATE_EGRESS_ALLOW_HTTP = True


@pytest.fixture
def oidc_org(org, owner, idp, loopback_egress):
    services.sso_connection_save(
        actor=OrgContext(organization=org, role=Role.OWNER, user=owner),
        kind="oidc", display_name="Acme ID", client_id=idp.client_id, client_secret=idp.client_secret,
        issuer_url=idp.issuer, allowed_domains=["acme.test"], default_role=Role.MEMBER, auto_join=True,
    )
    return org


def local(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def start(client, org, **data):
    """POST the "Sign in with …" button; the provider's authorize URL it redirects to."""
    response = client.post(f"/sso/{org.slug}/start/", data)
    assert response.status_code == 200, response.content[:500]
    url = response.context["url"]
    assert f'<meta http-equiv="refresh" content="0;url={escape(url)}">' in response.content.decode()
    return url


def at_provider(authorize_url: str) -> str:
    """The browser's visit to the provider (real HTTP): the callback URL it is sent back to."""
    answer = requests.get(authorize_url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def sign_in(client, org):
    """The whole code flow; the response to the callback."""
    return client.get(local(at_provider(start(client, org))))
