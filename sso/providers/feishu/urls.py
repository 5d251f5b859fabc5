from allauth.socialaccount.providers.oauth2.urls import default_urlpatterns

from sso.providers.feishu.provider import WorkEmailFeishuProvider

urlpatterns = default_urlpatterns(WorkEmailFeishuProvider)
