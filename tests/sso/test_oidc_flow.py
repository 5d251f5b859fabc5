"""OpenID Connect sign-in against a real IdP process on loopback: the code flow with PKCE, nonce and state,
just-in-time membership, and the attacks that must be refused."""

import pytest

from accounts.models import AuditLog, Membership, Role, User
from accounts.tenancy import SESSION_ORG_KEY
from allauth.socialaccount.models import SocialAccount
from tests.conftest import PASSWORD
from tests.accounts.factories import MembershipFactory, UserFactory
from tests.sso.conftest import at_provider, local, sign_in, start

pytestmark = pytest.mark.django_db


def actions(org):
    return list(AuditLog.objects.filter(organization=org).order_by("created_at", "id").values_list("action", flat=True))


def test_first_sign_in_creates_the_account_and_joins_with_the_default_role(client, oidc_org, idp):
    response = sign_in(client, oidc_org)
    assert response.status_code == 302 and response["Location"] == "/"
    user = User.objects.get(email="ada@acme.test")
    assert user.name == "Ada Lovelace" and not user.has_usable_password()
    assert Membership.objects.get(organization=oidc_org, user=user).role == Role.MEMBER
    assert client.session[SESSION_ORG_KEY] == oidc_org.pk
    assert client.get("/").status_code == 200  # signed in, in the organization
    # PKCE (S256) and a nonce went to the provider; the verifier came back to its token endpoint.
    (authorize,) = idp.authorize_requests
    assert authorize["code_challenge_method"] == "S256" and authorize["nonce"] and authorize["state"]
    assert idp.token_requests[0]["code_verifier"]
    assert actions(oidc_org)[-3:] == ["user.create_sso", "member.join_sso", "sso.login"]
    login = AuditLog.objects.get(organization=oidc_org, action="sso.login")
    assert login.actor == user and login.data == {"provider": "oidc"}


def test_second_sign_in_uses_the_same_account(client, oidc_org, idp):
    sign_in(client, oidc_org)
    client.logout()
    assert sign_in(client, oidc_org).status_code == 302
    assert User.objects.filter(email="ada@acme.test").count() == 1
    assert SocialAccount.objects.get(uid="u-1").provider == f"org-{oidc_org.slug}"
    assert actions(oidc_org).count("member.join_sso") == 1 and actions(oidc_org).count("sso.login") == 2


def test_next_is_followed_only_within_the_site(client, oidc_org, idp):
    authorize = start(client, oidc_org, next="/keys/")
    assert client.get(local(at_provider(authorize)))["Location"] == "/keys/"
    client.logout()
    authorize = start(client, oidc_org, next="https://evil.example/")
    assert client.get(local(at_provider(authorize)))["Location"] == "/"


@pytest.mark.parametrize("attack", ["forged", "wrong_audience", "expired", "wrong_nonce"])
def test_bad_tokens_are_refused(client, oidc_org, idp, attack):
    idp.attack = attack
    response = sign_in(client, oidc_org)
    assert response.status_code == 400
    assert "Signing in with Acme ID failed" in response.content.decode()
    assert not User.objects.filter(email="ada@acme.test").exists()
    assert "_auth_user_id" not in client.session
    refused = AuditLog.objects.get(organization=oidc_org, action="sso.login_refused")
    assert refused.data["reason"] == "provider_error"


def test_a_discovery_document_naming_another_issuer_is_refused(client, oidc_org, idp):
    idp.attack = "wrong_issuer"
    response = client.post(f"/sso/{oidc_org.slug}/start/")
    assert response.status_code == 400 and "Acme ID cannot be reached" in response.content.decode()
    assert not idp.authorize_requests
    assert AuditLog.objects.get(organization=oidc_org, action="sso.login_refused").data["reason"] == "provider_unreachable"


def test_a_replayed_state_is_refused(client, oidc_org, idp, django_user_model):
    callback = local(at_provider(start(client, oidc_org)))
    assert client.get(callback).status_code == 302
    client.logout()
    # The same callback again (state and code both spent), in the same browser and in another one.
    replay = client.get(callback)
    assert replay.status_code == 400 and "_auth_user_id" not in client.session
    from django.test import Client

    other = Client()
    assert other.get(callback).status_code == 400 and "_auth_user_id" not in other.session
    assert AuditLog.objects.filter(organization=oidc_org, action="sso.login").count() == 1


def test_a_state_from_another_browser_is_refused(client, oidc_org, idp):
    from django.test import Client

    callback = local(at_provider(start(Client(), oidc_org)))  # someone else's sign-in, sent to this browser
    assert client.get(callback).status_code == 400
    assert not User.objects.filter(email="ada@acme.test").exists()


def test_a_domain_not_allowed_is_refused_with_a_clear_message(client, oidc_org, idp):
    idp.next_user = {"sub": "u-2", "email": "eve@elsewhere.test", "name": "Eve"}
    response = sign_in(client, oidc_org)
    assert response.status_code == 403
    text = response.content.decode()
    assert f"eve@elsewhere.test cannot sign in to {oidc_org.name}: only addresses at acme.test can." in text
    assert not User.objects.filter(email="eve@elsewhere.test").exists()
    refused = AuditLog.objects.get(organization=oidc_org, action="sso.login_refused")
    assert refused.data == {"email": "eve@elsewhere.test", "reason": "domain_not_allowed", "provider": "oidc"}


def test_an_unverified_email_is_refused(client, oidc_org, idp):
    idp.next_user = {**idp.next_user, "email_verified": False}
    response = sign_in(client, oidc_org)
    assert response.status_code == 403 and "has not verified ada@acme.test" in response.content.decode()
    assert not User.objects.filter(email="ada@acme.test").exists()


def test_an_account_outside_the_organization_is_not_taken_over(client, oidc_org, idp):
    UserFactory(email="ada@acme.test")  # someone's existing account, not a member of this organization
    response = sign_in(client, oidc_org)
    assert response.status_code == 403
    assert "already exists and is not a member" in response.content.decode()
    assert not SocialAccount.objects.exists()


def test_an_existing_member_is_linked(client, oidc_org, idp):
    member = MembershipFactory(organization=oidc_org, user=UserFactory(email="ada@acme.test"), role=Role.VIEWER).user
    assert sign_in(client, oidc_org).status_code == 302
    assert SocialAccount.objects.get().user == member
    assert Membership.objects.get(user=member).role == Role.VIEWER  # their role is kept
    assert "member.join_sso" not in actions(oidc_org)


def test_without_auto_join_a_newcomer_is_refused(client, oidc_org, idp):
    connection = oidc_org.sso_connection
    connection.auto_join = False
    connection.save()
    response = sign_in(client, oidc_org)
    assert response.status_code == 403 and "Ask an administrator for an invitation" in response.content.decode()
    assert not User.objects.filter(email="ada@acme.test").exists()


def test_without_auto_join_existing_members_still_sign_in(client, oidc_org, idp):
    connection = oidc_org.sso_connection
    connection.auto_join = False
    connection.save()
    MembershipFactory(organization=oidc_org, user=UserFactory(email="ada@acme.test"), role=Role.MEMBER)
    assert sign_in(client, oidc_org).status_code == 302


def test_empty_allowed_domains_accept_any_address_the_provider_vouches_for(client, oidc_org, idp):
    connection = oidc_org.sso_connection
    connection.allowed_domains = []
    connection.save()
    idp.next_user = {"sub": "u-3", "email": "grace@anywhere.test", "name": "Grace", "email_verified": True}
    assert sign_in(client, oidc_org).status_code == 302
    assert Membership.objects.filter(organization=oidc_org, user__email="grace@anywhere.test").exists()


def test_a_disabled_connection_cannot_start(client, oidc_org):
    connection = oidc_org.sso_connection
    connection.enabled = False
    connection.save()
    assert client.post(f"/sso/{oidc_org.slug}/start/").status_code == 404
    assert client.get(f"/sso/{oidc_org.slug}/").status_code == 404


def test_the_provider_is_reached_only_through_the_egress_rules(client, oidc_org, idp, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = []  # 127.0.0.1 is not public: discovery is refused
    response = client.post(f"/sso/{oidc_org.slug}/start/")
    assert response.status_code == 400 and "Acme ID cannot be reached" in response.content.decode()
    assert not idp.authorize_requests


def test_login_page_shows_the_button_only_for_the_organization_asked_for(client, oidc_org):
    assert "Sign in with" not in client.get("/login/").content.decode()
    for url in (f"/login/?org={oidc_org.slug}", f"/sso/{oidc_org.slug}/"):
        page = client.get(url).content.decode()
        assert "Sign in with Acme ID" in page and f"/sso/{oidc_org.slug}/start/" in page
    assert client.get("/sso/no-such-org/").status_code == 404
    assert "Sign in with" not in client.get("/login/?org=no-such-org").content.decode()


def test_require_sso_turns_password_login_off_except_for_owners(client, oidc_org, owner, member_user, admin_user):
    connection = oidc_org.sso_connection
    connection.require_sso = True
    connection.save()
    for user in (member_user, admin_user):
        response = client.post("/login/", {"username": user.email, "password": PASSWORD})
        assert response.status_code == 200 and "_auth_user_id" not in client.session
        page = response.content.decode()
        assert f"{oidc_org.name} requires single sign-on" in page
        assert "Sign in with Acme ID" in page  # the way in is offered right there
    response = client.post("/login/", {"username": owner.email, "password": PASSWORD})
    assert response.status_code == 302 and client.session["_auth_user_id"] == str(owner.pk)


def test_without_require_sso_passwords_still_work(client, oidc_org, member_user):
    response = client.post("/login/", {"username": member_user.email, "password": PASSWORD})
    assert response.status_code == 302


def test_oidc_urls_of_an_organization_without_sso_are_not_found(client, org):
    assert client.get(f"/accounts/oidc/org-{org.slug}/login/").status_code == 404
    assert client.get(f"/accounts/oidc/org-{org.slug}/login/callback/?code=x&state=y").status_code == 404


def test_a_first_sign_in_receives_the_sign_up_credit_grant_once(client, oidc_org, idp, owner_ctx):
    """Just-in-time membership is a way in like an accepted invitation: billing's sign-up grant applies, once."""
    from decimal import Decimal

    from billing.credit_grants import credit_policy_set
    from billing.credit_models import CreditEntry

    credit_policy_set(actor=owner_ctx, signup_amount="5")
    sign_in(client, oidc_org)
    client.logout()
    sign_in(client, oidc_org)
    user = User.objects.get(email="ada@acme.test")
    grants = CreditEntry.objects.filter(organization=oidc_org, kind="signup", account__user=user)
    assert [entry.amount for entry in grants] == [Decimal("5")]
