from django.contrib import admin
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

from accounts.language import set_language

urlpatterns = [
    path("admin/", admin.site.urls),
    # Django's switch, returning only to a page a GET can show (accounts/language.py).
    path("i18n/setlang/", set_language, name="set_language"),
    path("api/schema/", SpectacularAPIView.as_view(), name="api-schema"),
    # The split view serves its start-up script as a file: the CSP allows no inline script.
    path("api/docs/", SpectacularSwaggerSplitView.as_view(url_name="api-schema"), name="api-docs"),
    path("api/", include("accounts.api.urls")),
    path("api/", include("keys.api.urls")),
    path("api/", include("billing.api.urls")),
    path("", include("batches.api_urls")),  # /v1/files, /v1/batches (config/asgi.py routes them here)
    path("api/", include("sso.api.urls")),
    path("", include("sso.urls")),  # before accounts.urls: it serves "login/"
    path("", include("accounts.urls")),
    path("", include("keys.urls")),
    path("", include("billing.urls")),
    path("", include("batches.urls")),
]
