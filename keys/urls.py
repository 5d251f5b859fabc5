from django.urls import path

from keys import views

urlpatterns = [
    # Virtual keys
    path("keys/", views.keys, name="keys"),
    path("keys/create/", views.key_create, name="key_create"),
    path("keys/<int:pk>/", views.key_detail, name="key_detail"),
    path("keys/<int:pk>/edit/", views.key_update, name="key_update"),
    path("keys/<int:pk>/rotate/", views.key_rotate, name="key_rotate"),
    path("keys/<int:pk>/revoke/", views.key_revoke, name="key_revoke"),
    # Provider credentials
    path("providers/", views.providers, name="providers"),
    path("providers/add/", views.credential_create, name="credential_create"),
    path("providers/<int:pk>/edit/", views.credential_edit, name="credential_edit"),
    path("providers/<int:pk>/delete/", views.credential_delete, name="credential_delete"),
    path("providers/<int:pk>/test/", views.credential_test, name="credential_test"),
    path("providers/<int:pk>/test-all/", views.credential_test_all, name="credential_test_all"),
    path("providers/<int:pk>/models/fetch/", views.credential_models_fetch, name="credential_models_fetch"),
    path("providers/<int:pk>/models/create/", views.credential_models_create, name="credential_models_create"),
    path("providers/<int:pk>/balance/", views.credential_balance, name="credential_balance"),
    # Models and deployments
    path("models/", views.models, name="models"),
    path("models/create/", views.model_create, name="model_create"),
    path("models/<int:pk>/edit/", views.model_edit, name="model_edit"),
    path("models/<int:pk>/delete/", views.model_delete, name="model_delete"),
    path("models/<int:pk>/deployments/add/", views.deployment_create, name="deployment_create"),
    path("deployments/<int:pk>/edit/", views.deployment_edit, name="deployment_edit"),
    path("deployments/<int:pk>/probe/", views.deployment_probe_now, name="deployment_probe"),
    path("deployments/<int:pk>/delete/", views.deployment_delete, name="deployment_delete"),
]
