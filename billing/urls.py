from django.urls import path

from billing import budget_views, credit_views, model_report_views, price_views, tool_views, usage_views, views

urlpatterns = [
    path("", views.overview, name="home"),
    path("", views.overview, name="overview"),  # the same page, by the name billing's views reverse
    path("models/<int:pk>/report/", model_report_views.model_report, name="model_report"),
    # Usage explorer
    path("usage/", usage_views.usage, name="usage"),
    path("usage/export.csv", usage_views.usage_export, name="usage_export"),
    path("usage/cost/", usage_views.usage_cost, name="usage_cost"),
    path("usage/<int:pk>/", usage_views.usage_event, name="usage_event"),
    # Budgets and alert channels
    path("budgets/", budget_views.budgets, name="budgets"),
    path("budgets/create/", budget_views.budget_create, name="budget_create"),
    path("budgets/<int:pk>/edit/", budget_views.budget_edit, name="budget_edit"),
    path("budgets/<int:pk>/delete/", budget_views.budget_delete, name="budget_delete"),
    path("alerts/channels/create/", budget_views.channel_create, name="channel_create"),
    path("alerts/channels/<int:pk>/edit/", budget_views.channel_edit, name="channel_edit"),
    path("alerts/channels/<int:pk>/delete/", budget_views.channel_delete, name="channel_delete"),
    path("alerts/channels/<int:pk>/rotate/", budget_views.channel_rotate, name="channel_rotate"),
    path("alerts/channels/<int:pk>/test/", budget_views.channel_test, name="channel_test"),
    # Credits: a member's wallet, the admin's page
    path("wallet/", credit_views.wallet, name="wallet"),
    path("wallet/redeem/", credit_views.wallet_redeem, name="wallet_redeem"),
    path("credits/", credit_views.credits_admin, name="credits_admin"),
    path("credits/policy/", credit_views.credit_policy_save, name="credit_policy_save"),
    path("credits/adjust/", credit_views.credit_adjust, name="credit_adjust"),
    path("credits/codes/generate/", credit_views.credit_codes_generate, name="credit_codes_generate"),
    path("credits/codes/export.csv", credit_views.credit_codes_export, name="credit_codes_export"),
    # Cost estimator and playground
    path("estimator/", tool_views.estimator_page, name="estimator"),
    path("playground/", tool_views.playground, name="playground"),
    # Price book and exchange rates
    path("prices/", price_views.prices, name="prices"),
    path("prices/create/", price_views.price_create, name="price_create"),
    path("prices/<int:pk>/edit/", price_views.price_edit, name="price_edit"),
    path("exchange-rates/", price_views.exchange_rates, name="exchange_rates"),
    path("exchange-rates/create/", price_views.exchange_rate_create, name="exchange_rate_create"),
    path("exchange-rates/<int:pk>/edit/", price_views.exchange_rate_edit, name="exchange_rate_edit"),
]
