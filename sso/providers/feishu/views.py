from allauth.socialaccount.providers.oauth2.views import OAuth2LoginView

from sso.providers.callback import StatefulCallbackView
from sso.providers.feishu.provider import FeishuAdapter

oauth2_login = OAuth2LoginView.adapter_view(FeishuAdapter)
oauth2_callback = StatefulCallbackView.adapter_view(FeishuAdapter)
