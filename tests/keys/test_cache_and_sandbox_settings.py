"""The response-cache and sandbox switches of keys and models: REST API, dashboard forms, the relay's
snapshots, and tenancy (README "Response cache", "Sandbox keys")."""

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from keys.models import Model, VirtualKey
from relay.snapshots import key_snapshot_by_hash, model_snapshot
from tests.keys.factories import ModelFactory, VirtualKeyFactory

pytestmark = pytest.mark.django_db


def api(user):
    client = APIClient()
    client.force_login(user)
    return client


def test_key_flags_through_the_rest_api_reach_the_relays_snapshot(owner, org):
    client = api(owner)
    created = client.post("/api/keys/", {"name": "dry run", "sandbox": True, "response_cache": True}, format="json").json()
    assert (created["sandbox"], created["response_cache"], created["cache_any_temperature"], created["cache_tool_calls"]) == (True, True, False, False)
    key = VirtualKey.objects.get(pk=created["id"])
    snapshot = key_snapshot_by_hash(key.key_hash)
    assert snapshot.sandbox and snapshot.response_cache and not snapshot.cache_any_temperature
    updated = client.patch(f"/api/keys/{key.pk}/", {"sandbox": False, "cache_tool_calls": True}, format="json").json()
    assert (updated["sandbox"], updated["response_cache"], updated["cache_tool_calls"]) == (False, True, True)
    refused = client.patch(f"/api/keys/{key.pk}/", {"sandbox": "maybe"}, format="json")
    assert refused.status_code == 400 and "sandbox" in refused.json()["error"]["fields"]


def test_model_flags_through_the_rest_api(admin_user, org):
    client = api(admin_user)
    created = client.post("/api/models/", {"name": "cached", "response_cache": True}, format="json").json()
    assert (created["response_cache"], created["cache_any_temperature"], created["cache_tool_calls"]) == (True, False, False)
    updated = client.patch(f"/api/models/{created['id']}/", {"cache_any_temperature": True}, format="json").json()
    assert updated["response_cache"] and updated["cache_any_temperature"]
    snapshot = model_snapshot(organization_id=org.pk, name="cached")
    assert snapshot.response_cache and snapshot.cache_any_temperature and not snapshot.cache_tool_calls


def test_another_organizations_key_and_model_cannot_be_switched(owner, other_org):
    foreign_key = VirtualKeyFactory(organization=other_org)
    foreign_model = ModelFactory(organization=other_org)
    client = api(owner)
    assert client.patch(f"/api/keys/{foreign_key.pk}/", {"sandbox": True}, format="json").status_code == 404
    assert client.patch(f"/api/models/{foreign_model.pk}/", {"response_cache": True}, format="json").status_code == 404
    foreign_key.refresh_from_db()
    foreign_model.refresh_from_db()
    assert not foreign_key.sandbox and not foreign_model.response_cache


def test_dashboard_forms_set_and_show_the_flags(client, owner, org):
    client.force_login(owner)
    response = client.post(reverse("key_create"), {"name": "Pipeline dry run", "sandbox": "on", "response_cache": "on"})
    assert response.status_code in (200, 302)
    key = VirtualKey.objects.get(name="Pipeline dry run")
    assert key.sandbox and key.response_cache and not key.cache_tool_calls
    page = client.get(reverse("key_detail", args=[key.pk])).content.decode()
    assert 'id="key-sandbox"' in page and "Sandbox key" in page
    # The edit form: an unticked box turns the flag off.
    assert client.post(reverse("key_update", args=[key.pk]), {"edit-name": "Pipeline dry run", "edit-response_cache": "on"}).status_code == 302
    key.refresh_from_db()
    assert not key.sandbox and key.response_cache
    assert "sandbox" not in client.get(reverse("keys")).content.decode().split("Pipeline dry run")[1][:80]

    model = ModelFactory(organization=org, name="m1")
    edit = client.get(reverse("model_edit", args=[model.pk])).content.decode()
    assert 'id="response-cache"' in edit
    data = {"description": "", "routing": "weighted", "is_active": "on", "response_cache": "on", "cache_tool_calls": "on"}
    assert client.post(reverse("model_edit", args=[model.pk]), data).status_code == 302
    model.refresh_from_db()
    assert model.response_cache and model.cache_tool_calls and not model.cache_any_temperature
    assert Model.objects.filter(organization=org, response_cache=True).count() == 1
