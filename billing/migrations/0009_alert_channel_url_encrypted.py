"""Webhook and bot URLs move from the plain `target` column to `url_encrypted` (Fernet, keys.encryption).

Reversible: going back decrypts them into `target` again (with the same TOLLGATE_ENCRYPTION_KEYS).
The hint is computed here, not imported, so that later changes to the model cannot alter this migration.
"""

from urllib.parse import urlsplit

from django.db import migrations, models

from keys.encryption import decrypt, encrypt


def _hint(url: str) -> str:
    try:
        parts = urlsplit(url)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        return "…"
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{port}" if port else host
    rest = url.split(parts.netloc, 1)[-1] if parts.netloc else ""
    return f"{parts.scheme}://{netloc}/…{rest[-4:] if len(rest) >= 16 else ''}"


def encrypt_urls(apps, schema_editor):
    AlertChannel = apps.get_model("billing", "AlertChannel")
    for channel in AlertChannel.objects.exclude(kind="email").exclude(target="").iterator():
        channel.url_encrypted, channel.url_hint, channel.target = encrypt(channel.target), _hint(channel.target), ""
        channel.save(update_fields=["url_encrypted", "url_hint", "target"])


def decrypt_urls(apps, schema_editor):
    AlertChannel = apps.get_model("billing", "AlertChannel")
    for channel in AlertChannel.objects.exclude(kind="email").exclude(url_encrypted="").iterator():
        channel.target, channel.url_encrypted, channel.url_hint = decrypt(channel.url_encrypted), "", ""
        channel.save(update_fields=["url_encrypted", "url_hint", "target"])


class Migration(migrations.Migration):

    dependencies = [
        ("billing", "0008_usage_flags_and_dead_letters"),
    ]

    operations = [
        migrations.AddField(
            model_name="alertchannel",
            name="url_encrypted",
            field=models.TextField(blank=True),
        ),
        migrations.AddField(
            model_name="alertchannel",
            name="url_hint",
            field=models.CharField(blank=True, max_length=300),
        ),
        migrations.RunPython(encrypt_urls, decrypt_urls, elidable=False),
    ]
