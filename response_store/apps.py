from django.apps import AppConfig


class ResponseStoreConfig(AppConfig):
    name = "response_store"
    default_auto_field = "django.db.models.BigAutoField"
