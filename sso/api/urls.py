from django.urls import path

from sso.api import views

urlpatterns = [
    path("sso/", views.SsoConnectionApi.as_view(), name="api-sso"),
]
