from allauth.socialaccount.providers.oauth2.views import OAuth2LoginView

from sso.providers.callback import StatefulCallbackView
from sso.providers.dingtalk.provider import DingTalkAdapter

oauth2_login = OAuth2LoginView.adapter_view(DingTalkAdapter)
oauth2_callback = StatefulCallbackView.adapter_view(DingTalkAdapter)
