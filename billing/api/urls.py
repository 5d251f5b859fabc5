from django.urls import path

from billing.api import alerts, budgets, credits, estimate, model_report, prices, usage

urlpatterns = [
    path("models/<int:pk>/report/", model_report.ModelReportApi.as_view(), name="api-model-report"),
    path("prices/", prices.PriceListApi.as_view(), name="api-price-list"),
    path("prices/<int:pk>/", prices.PriceDetailApi.as_view(), name="api-price-detail"),
    path("exchange-rates/", prices.ExchangeRateListApi.as_view(), name="api-exchange-rate-list"),
    path("budgets/", budgets.BudgetListApi.as_view(), name="api-budget-list"),
    path("budgets/<int:pk>/", budgets.BudgetDetailApi.as_view(), name="api-budget-detail"),
    path("usage/", usage.UsageSummaryApi.as_view(), name="api-usage-summary"),
    path("usage/events/", usage.UsageEventListApi.as_view(), name="api-usage-events"),
    path("usage/backlog/", usage.UsageBacklogApi.as_view(), name="api-usage-backlog"),
    path("estimate/", estimate.EstimateApi.as_view(), name="api-estimate"),
    path("alert-channels/", alerts.AlertChannelListApi.as_view(), name="api-alert-channel-list"),
    path("alert-channels/<int:pk>/", alerts.AlertChannelDetailApi.as_view(), name="api-alert-channel-detail"),
    path("alert-channels/<int:pk>/rotate-secret/", alerts.AlertChannelRotateSecretApi.as_view(), name="api-alert-channel-rotate"),
    path("alert-channels/<int:pk>/test/", alerts.AlertChannelTestApi.as_view(), name="api-alert-channel-test"),
    path("credits/wallet/", credits.WalletApi.as_view(), name="api-credit-wallet"),
    path("credits/redeem/", credits.RedeemApi.as_view(), name="api-credit-redeem"),
    path("credits/policy/", credits.CreditPolicyApi.as_view(), name="api-credit-policy"),
    path("credits/accounts/", credits.CreditAccountListApi.as_view(), name="api-credit-account-list"),
    path("credits/accounts/<int:pk>/entries/", credits.CreditEntryListApi.as_view(), name="api-credit-entry-list"),
    path("credits/codes/", credits.RedemptionCodeListApi.as_view(), name="api-credit-code-list"),
    path("alert-deliveries/", alerts.AlertDeliveryListApi.as_view(), name="api-alert-delivery-list"),
]
