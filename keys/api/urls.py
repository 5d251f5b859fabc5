from django.urls import path

from keys.api import views

urlpatterns = [
    path("keys/", views.VirtualKeyListApi.as_view(), name="api-key-list"),
    path("keys/<int:pk>/", views.VirtualKeyDetailApi.as_view(), name="api-key-detail"),
    path("keys/<int:pk>/rotate/", views.VirtualKeyRotateApi.as_view(), name="api-key-rotate"),
    path("providers/presets/", views.ProviderPresetListApi.as_view(), name="api-provider-presets"),
    path("credentials/", views.CredentialListApi.as_view(), name="api-credential-list"),
    path("credentials/<int:pk>/", views.CredentialDetailApi.as_view(), name="api-credential-detail"),
    path("credentials/<int:pk>/models/", views.CredentialModelsApi.as_view(), name="api-credential-models"),
    path("models/", views.ModelListApi.as_view(), name="api-model-list"),
    path("models/<int:pk>/", views.ModelDetailApi.as_view(), name="api-model-detail"),
    path("models/<int:pk>/deployments/", views.ModelDeploymentCreateApi.as_view(), name="api-model-deployments"),
    path("deployments/<int:pk>/", views.DeploymentDetailApi.as_view(), name="api-deployment-detail"),
]
