from sso.providers.wecom.provider import WeComAdapter
from sso.providers.views import oauth2_views

oauth2_login, oauth2_callback = oauth2_views(WeComAdapter)
