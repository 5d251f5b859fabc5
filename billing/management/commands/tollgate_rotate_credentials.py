"""Re-encrypt every stored secret (provider credentials, alert channel URLs and secrets, SSO client secrets) under the first of TOLLGATE_ENCRYPTION_KEYS.

Run it after putting a new key first in the list; once it reports success the old keys can be dropped.
"""

from cryptography.fernet import InvalidToken
from django.core.management.base import BaseCommand, CommandError

from billing import alerts
from keys import services
from sso import services as sso_services


class Command(BaseCommand):
    help = "Re-encrypt all provider credentials, alert channels and SSO client secrets under the newest TOLLGATE_ENCRYPTION_KEYS entry; prints the counts."

    def handle(self, *args, **options):
        try:
            count = services.credentials_reencrypt()
            channels = alerts.alert_channels_reencrypt()
            connections = sso_services.sso_secrets_reencrypt()
        except InvalidToken as exc:
            raise CommandError(
                "A stored secret cannot be decrypted with any of TOLLGATE_ENCRYPTION_KEYS; keep the old key in the list."
            ) from exc
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {count} credential(s), {channels} alert channel(s) and {connections} single sign-on secret(s)."))
