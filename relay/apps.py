from django.apps import AppConfig


class RelayConfig(AppConfig):
    name = "relay"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # Imported once the app registry is ready, as Django asks of AppConfig.ready.
        from django.conf import settings

        from wire.adapters import mock

        # Read at each call, so a test's settings override applies.
        mock.pace_ms = lambda: (settings.TOLLGATE_DEMO_FIRST_BYTE_MS, settings.TOLLGATE_DEMO_CHUNK_MS)
