from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The key pages (keys, a lower floor) show spend and set budgets through this interface. Imported
        # here: modules with models cannot be imported before the app registry is ready.
        from billing.key_budgets import KeyBudgets
        from keys.extensions import register

        register(KeyBudgets())
