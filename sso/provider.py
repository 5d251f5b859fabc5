"""allauth's provider registry reads `<installed app>.provider.provider_classes`: these are the SSO kinds.

allauth's own openid_connect, feishu and dingtalk apps are not installed; these subclasses take their ids.
"""

from sso.providers.dingtalk.provider import EmailDingTalkProvider
from sso.providers.feishu.provider import WorkEmailFeishuProvider
from sso.providers.oidc.provider import StrictOIDCProvider
from sso.providers.wecom.provider import WeComProvider

provider_classes = [StrictOIDCProvider, WorkEmailFeishuProvider, EmailDingTalkProvider, WeComProvider]
