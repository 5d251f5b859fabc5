from django.apps import AppConfig


class BillingConfig(AppConfig):
    name = "billing"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self):
        # The key pages (keys, a lower floor) show spend and set budgets through this interface. Imported
        # here: modules with models cannot be imported before the app registry is ready.
        from django.db.backends.signals import connection_created

        from accounts.extensions import on_member_joined
        from billing import exact_sums
        from billing.credit_grants import credit_member_joined
        from billing.key_budgets import KeyBudgets
        from keys.extensions import register

        register(KeyBudgets())
        on_member_joined(credit_member_joined)  # sign-up and invitation credit grants
        connection_created.connect(exact_sums.register)  # exact money sums on SQLite
