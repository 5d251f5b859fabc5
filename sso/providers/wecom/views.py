from allauth.socialaccount.providers.oauth2.views import OAuth2LoginView

from sso.providers.callback import StatefulCallbackView
from sso.providers.wecom.provider import WeComAdapter

oauth2_login = OAuth2LoginView.adapter_view(WeComAdapter)
oauth2_callback = StatefulCallbackView.adapter_view(WeComAdapter)
