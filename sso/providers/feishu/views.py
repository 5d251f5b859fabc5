from sso.providers.feishu.provider import FeishuAdapter
from sso.providers.views import oauth2_views

oauth2_login, oauth2_callback = oauth2_views(FeishuAdapter)
