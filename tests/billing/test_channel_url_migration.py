"""billing 0009: webhook and bot URLs stored before it are encrypted in place, and going back restores them."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from keys.encryption import decrypt
from tests.accounts.factories import OrganizationFactory

BEFORE = [("billing", "0008_usage_flags_and_dead_letters")]
AFTER = [("billing", "0009_alert_channel_url_encrypted")]
BOT_URL = "https://oapi.dingtalk.com/robot/send?access_token=tok-migrated-0123456789"


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.migrate(targets)
    return MigrationExecutor(connection).loader.project_state(targets).apps


def _row(pk):
    with connection.cursor() as cursor:
        cursor.execute("SELECT * FROM billing_alertchannel WHERE id = %s", [pk])
        columns = [c[0] for c in cursor.description]
        return dict(zip(columns, cursor.fetchone()))


@pytest.mark.django_db(transaction=True)
def test_existing_channel_urls_are_encrypted_and_the_migration_reverses():
    org = OrganizationFactory()
    try:
        old_apps = _migrate(BEFORE)
        Channel = old_apps.get_model("billing", "AlertChannel")
        bot = Channel.objects.create(organization_id=org.pk, name="bot", kind="dingtalk", target=BOT_URL)
        mail = Channel.objects.create(organization_id=org.pk, name="mail", kind="email", target="ops@example.com")

        _migrate(AFTER)
        row = _row(bot.pk)
        assert row["target"] == "" and "tok-migrated" not in row["url_encrypted"] and decrypt(row["url_encrypted"]) == BOT_URL
        assert row["url_hint"] == "https://oapi.dingtalk.com/…6789"
        assert _row(mail.pk)["target"] == "ops@example.com" and _row(mail.pk)["url_encrypted"] == ""

        _migrate(BEFORE)
        assert _row(bot.pk)["target"] == BOT_URL and _row(mail.pk)["target"] == "ops@example.com"
    finally:
        _migrate(MigrationExecutor(connection).loader.graph.leaf_nodes())
