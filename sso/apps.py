from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "sso"
    verbose_name = "Single sign-on"

    def ready(self):
        from sso import receivers  # noqa: F401 (connects the sign-in audit to allauth's login signal)
