"""Invitations without working email: the link shown once, resent (new token, old one void) and revoked."""

import re
from datetime import timedelta

import pytest
from django.core import mail
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from accounts import services
from accounts.errors import ApplicationError
from accounts.models import AuditLog, Invitation, Role
from accounts.tenancy import OrgContext
from tests.accounts.factories import MembershipFactory, OrganizationFactory, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def invite(owner_ctx, django_capture_on_commit_callbacks):
    def make(email="new.person@example.com", **kwargs):
        with django_capture_on_commit_callbacks(execute=True):
            return services.invitation_create(actor=owner_ctx, email=email, **kwargs)

    return make


def _token(link: str) -> str:
    return re.search(r"/invitation/(tgi_[\w-]+)/$", link).group(1)


def test_resend_gives_a_new_link_and_voids_the_old_one(invite, owner_ctx, org, django_capture_on_commit_callbacks):
    invitation, old = invite()
    Invitation.objects.filter(pk=invitation.pk).update(expires_at=timezone.now() - timedelta(days=1))  # expired
    with django_capture_on_commit_callbacks(execute=True):
        resent, new = services.invitation_resend(actor=owner_ctx, invitation=invitation, ip="203.0.113.7")

    assert new != old and resent.pk == invitation.pk
    assert services.invitation_lookup(token=new).pk == invitation.pk
    with pytest.raises(ApplicationError) as refused:
        services.invitation_lookup(token=old)
    assert refused.value.code == "invalid_token"
    assert resent.expires_at > timezone.now() + timedelta(days=6)
    assert len(mail.outbox) == 2 and new in mail.outbox[1].body and old not in mail.outbox[1].body
    entry = AuditLog.objects.get(organization=org, action="invitation.resend")
    assert (entry.actor, entry.target_id, entry.ip) == (owner_ctx.user, str(invitation.pk), "203.0.113.7")
    assert new not in str(entry.data) and old not in str(entry.data)
    assert services.invitation_link(new).endswith(f"/invitation/{new}/")


def test_resend_refuses_accepted_revoked_and_roles_above_the_actor(invite, owner_ctx, org):
    invitation, token = invite("boss@example.com", role=Role.OWNER)
    admin = OrgContext(organization=org, role=Role.ADMIN, user=MembershipFactory(organization=org, role=Role.ADMIN).user)
    with pytest.raises(ApplicationError) as refused:
        services.invitation_resend(actor=admin, invitation=invitation)
    assert refused.value.status == 403

    services.invitation_revoke(actor=owner_ctx, invitation=invitation)
    with pytest.raises(ApplicationError) as refused:
        services.invitation_resend(actor=owner_ctx, invitation=invitation)
    assert refused.value.code == "revoked"

    accepted, token = invite("joiner@example.com")
    services.invitation_accept(token=token, user=UserFactory(email="joiner@example.com"))
    with pytest.raises(ApplicationError) as refused:
        services.invitation_resend(actor=owner_ctx, invitation=accepted)
    assert refused.value.code == "already_accepted"
    assert not AuditLog.objects.filter(action="invitation.resend").exists()


def test_dashboard_shows_the_link_once_and_resends_and_revokes(client, org, owner, django_capture_on_commit_callbacks):
    client.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("member_invite"), {"email": "dev@example.com", "role": Role.MEMBER, "team": ""})
    html = response.content.decode()
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    link = re.search(r'data-copy="(http[^"]+)"', html).group(1)
    assert link in mail.outbox[0].body
    members = client.get(reverse("members")).content.decode()
    assert _token(link) not in members
    invitation = Invitation.objects.get(email="dev@example.com")
    assert reverse("invitation_resend", args=[invitation.pk]) in members

    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(reverse("invitation_resend", args=[invitation.pk]))
    assert response.status_code == 200 and "no-store" in response["Cache-Control"]
    new_link = re.search(r'data-copy="(http[^"]+)"', response.content.decode()).group(1)
    assert new_link != link and new_link in mail.outbox[1].body
    assert client.get(link.replace("http://127.0.0.1:8000", "")).status_code == 404
    assert client.get(new_link.replace("http://127.0.0.1:8000", "")).status_code in (200, 403)

    response = client.post(reverse("invitation_revoke", args=[invitation.pk]))
    assert response.status_code == 302
    assert list(AuditLog.objects.filter(organization=org).values_list("action", flat=True).order_by("pk"))[-3:] == [
        "invitation.create", "invitation.resend", "invitation.revoke",
    ]
    # A revoked invitation can no longer be resent.
    assert client.post(reverse("invitation_resend", args=[invitation.pk])).status_code == 404


def test_api_returns_the_link_once_resends_and_revokes(org, owner, django_capture_on_commit_callbacks):
    api = APIClient()
    api.force_login(owner)
    with django_capture_on_commit_callbacks(execute=True):
        created = api.post("/api/invitations/", {"email": "dev@example.com", "role": "member"}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert _token(body["link"]) in mail.outbox[0].body
    assert "link" not in api.get(f"/api/invitations/{body['id']}/").json()

    with django_capture_on_commit_callbacks(execute=True):
        resent = api.post(f"/api/invitations/{body['id']}/resend/")
    assert resent.status_code == 200, resent.content
    new = resent.json()
    assert new["id"] == body["id"] and new["status"] == "pending" and new["link"] != body["link"]
    with pytest.raises(ApplicationError):
        services.invitation_lookup(token=_token(body["link"]))
    assert services.invitation_lookup(token=_token(new["link"])).pk == body["id"]

    assert api.delete(f"/api/invitations/{body['id']}/").status_code == 204
    refused = api.post(f"/api/invitations/{body['id']}/resend/")
    assert refused.status_code == 400 and refused.json()["error"]["code"] == "revoked"
    assert AuditLog.objects.filter(organization=org, action__in=["invitation.resend", "invitation.revoke"]).count() == 2

    foreign = Invitation.objects.create(
        organization=OrganizationFactory(), email="x@example.com", role=Role.MEMBER, token_hash="h", expires_at=timezone.now() + timedelta(days=1),
    )
    assert api.post(f"/api/invitations/{foreign.pk}/resend/").status_code == 404
