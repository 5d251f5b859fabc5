from allauth.socialaccount.providers.oauth2.urls import default_urlpatterns

from sso.providers.dingtalk.provider import EmailDingTalkProvider

urlpatterns = default_urlpatterns(EmailDingTalkProvider)
