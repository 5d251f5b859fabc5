from sso.providers.dingtalk.provider import DingTalkAdapter
from sso.providers.views import oauth2_views

oauth2_login, oauth2_callback = oauth2_views(DingTalkAdapter)
