"""Provider secrets at rest: encrypted columns, MultiFernet key rotation and its management command."""

import pytest
from cryptography.fernet import Fernet
from django.core.management import CommandError, call_command
from django.db import connection

from accounts.models import Role
from accounts.tenancy import OrgContext
from keys import encryption, services
from keys.models import Deployment, ProviderCredential
from keys.selectors import credential_extra_headers, target_for
from tests.keys.factories import DeploymentFactory

pytestmark = pytest.mark.django_db

API_KEY = "sk-at-rest-canary-0123456789"
HEADER_VALUE = "x-header-canary-value"


@pytest.fixture
def keys_ab():
    return Fernet.generate_key().decode(), Fernet.generate_key().decode()


@pytest.fixture
def credential(org, settings, keys_ab):
    """A credential with an API key and an extra header, encrypted under key A alone."""
    key_a, _key_b = keys_ab
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_a]
    settings.TOLLGATE_EGRESS_ALLOW_HOSTS = ["api.openai.com"]
    return services.credential_create(
        actor=OrgContext(organization=org, role=Role.OWNER, user=None), name="prod", provider="openai",
        api_key=API_KEY, extra_headers={"X-Tenant": HEADER_VALUE},
    )


def _raw_columns(pk):
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT api_key_encrypted, extra_headers_encrypted, api_key_hint FROM keys_providercredential WHERE id = %s", [pk]
        )
        return cursor.fetchone()


def test_the_database_never_holds_the_plaintext(credential):
    api_key_column, headers_column, hint = _raw_columns(credential.pk)
    assert API_KEY not in api_key_column and HEADER_VALUE not in headers_column and "X-Tenant" not in headers_column
    assert hint == API_KEY[-4:]
    assert encryption.decrypt(api_key_column) == API_KEY
    assert credential_extra_headers(credential) == {"X-Tenant": HEADER_VALUE}


def test_each_encryption_is_fresh(settings, keys_ab):
    settings.TOLLGATE_ENCRYPTION_KEYS = [keys_ab[0]]
    assert encryption.encrypt(API_KEY) != encryption.encrypt(API_KEY)
    assert encryption.encrypt("") == "" and encryption.decrypt("") == ""


def test_rotation_with_multifernet(credential, settings, keys_ab):
    key_a, key_b = keys_ab
    before = _raw_columns(credential.pk)

    # The new key first, the old one still listed: old tokens still decrypt.
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b, key_a]
    credential.refresh_from_db()
    assert encryption.decrypt(credential.api_key_encrypted) == API_KEY
    # Under B alone they do not, until re-encrypted.
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    with pytest.raises(ValueError):
        encryption.decrypt(credential.api_key_encrypted)

    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b, key_a]
    assert services.credentials_reencrypt() == 1
    after = _raw_columns(credential.pk)
    assert after[0] != before[0] and after[1] != before[1] and API_KEY not in after[0]

    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    credential.refresh_from_db()
    assert encryption.decrypt(credential.api_key_encrypted) == API_KEY
    assert credential_extra_headers(credential) == {"X-Tenant": HEADER_VALUE}
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_a]
    with pytest.raises(ValueError):
        encryption.decrypt(credential.api_key_encrypted)


def test_the_relay_target_decrypts_after_rotation(credential, settings, keys_ab):
    key_a, key_b = keys_ab
    deployment = DeploymentFactory(organization=credential.organization, credential=credential)
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b, key_a]
    services.credentials_reencrypt()
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    target = target_for(Deployment.objects.select_related("credential").get(pk=deployment.pk))
    assert (target.api_key, target.extra_headers) == (API_KEY, {"X-Tenant": HEADER_VALUE})


def test_rotate_command_prints_the_count(credential, settings, keys_ab, capsys):
    key_a, key_b = keys_ab
    services.credential_create(
        actor=OrgContext(organization=credential.organization, role=Role.OWNER, user=None), name="demo", provider="mock"
    )
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b, key_a]
    call_command("tollgate_rotate_credentials")
    assert "Re-encrypted 2 credential(s), 0 alert channel(s) and 0 single sign-on secret(s)." in capsys.readouterr().out
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    assert encryption.decrypt(ProviderCredential.objects.get(name="prod").api_key_encrypted) == API_KEY


def test_rotate_command_re_encrypts_alert_channel_urls_and_secrets(credential, settings, keys_ab, capsys):
    from billing.alerts import alert_channel_create

    key_a, key_b = keys_ab
    url = "https://open.feishu.cn/open-apis/bot/v2/hook/tok-rotated-0123456789"
    channel, _secret = alert_channel_create(
        actor=OrgContext(organization=credential.organization, role=Role.OWNER, user=None), name="bot", kind="feishu",
        target=url, secret="SECbot-secret",
    )
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b, key_a]
    call_command("tollgate_rotate_credentials")
    assert "1 alert channel(s)" in capsys.readouterr().out
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    channel.refresh_from_db()
    assert channel.url() == url and encryption.decrypt(channel.secret_encrypted) == "SECbot-secret"


def test_rotate_command_without_the_old_key_fails_cleanly(credential, settings, keys_ab):
    _key_a, key_b = keys_ab
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    with pytest.raises(CommandError, match="keep the old key"):
        call_command("tollgate_rotate_credentials")


def test_api_shows_null_header_names_when_undecryptable(credential, settings, keys_ab, client, owner):
    _key_a, key_b = keys_ab
    settings.TOLLGATE_ENCRYPTION_KEYS = [key_b]
    client.force_login(owner)
    body = client.get(f"/api/credentials/{credential.pk}/").json()
    assert body["extra_header_names"] is None and body["has_api_key"] is True
