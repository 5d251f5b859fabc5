from django.urls import path

from billing.api import credits, model_report, views

urlpatterns = [
    path("models/<int:pk>/report/", model_report.ModelReportApi.as_view(), name="api-model-report"),
    path("prices/", views.PriceListApi.as_view(), name="api-price-list"),
    path("prices/<int:pk>/", views.PriceDetailApi.as_view(), name="api-price-detail"),
    path("exchange-rates/", views.ExchangeRateListApi.as_view(), name="api-exchange-rate-list"),
    path("budgets/", views.BudgetListApi.as_view(), name="api-budget-list"),
    path("budgets/<int:pk>/", views.BudgetDetailApi.as_view(), name="api-budget-detail"),
    path("usage/", views.UsageSummaryApi.as_view(), name="api-usage-summary"),
    path("usage/events/", views.UsageEventListApi.as_view(), name="api-usage-events"),
    path("usage/backlog/", views.UsageBacklogApi.as_view(), name="api-usage-backlog"),
    path("estimate/", views.EstimateApi.as_view(), name="api-estimate"),
    path("alert-channels/", views.AlertChannelListApi.as_view(), name="api-alert-channel-list"),
    path("alert-channels/<int:pk>/", views.AlertChannelDetailApi.as_view(), name="api-alert-channel-detail"),
    path("alert-channels/<int:pk>/rotate-secret/", views.AlertChannelRotateSecretApi.as_view(), name="api-alert-channel-rotate"),
    path("alert-channels/<int:pk>/test/", views.AlertChannelTestApi.as_view(), name="api-alert-channel-test"),
    path("credits/wallet/", credits.WalletApi.as_view(), name="api-credit-wallet"),
    path("credits/redeem/", credits.RedeemApi.as_view(), name="api-credit-redeem"),
    path("credits/policy/", credits.CreditPolicyApi.as_view(), name="api-credit-policy"),
    path("credits/accounts/", credits.CreditAccountListApi.as_view(), name="api-credit-account-list"),
    path("credits/accounts/<int:pk>/entries/", credits.CreditEntryListApi.as_view(), name="api-credit-entry-list"),
    path("credits/codes/", credits.RedemptionCodeListApi.as_view(), name="api-credit-code-list"),
    path("alert-deliveries/", views.AlertDeliveryListApi.as_view(), name="api-alert-delivery-list"),
]
