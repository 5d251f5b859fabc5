"""A new credential waits a minute for the first byte (and each idle gap), not five."""

import pytest
from rest_framework.test import APIClient

from keys.forms import CredentialCreateForm
from keys.models import ProviderCredential

pytestmark = pytest.mark.django_db


def test_a_credential_created_without_timeouts_gets_sensible_defaults(org, admin_user, settings):
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.openai.com"]
    client = APIClient()
    client.force_login(admin_user)
    body = {"name": "OpenAI", "provider": "openai", "api_key": "sk-test-0123456789"}
    created = client.post("/api/credentials/", body, format="json")
    assert created.status_code == 201, created.content
    assert (created.json()["connect_timeout"], created.json()["read_timeout"]) == (10.0, 60.0)
    assert ProviderCredential._meta.get_field("read_timeout").default == 60.0


def test_the_credential_form_offers_the_same_defaults():
    form = CredentialCreateForm()
    assert (form.fields["connect_timeout"].initial, form.fields["read_timeout"].initial) == (10.0, 60.0)
