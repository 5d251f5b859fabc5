from django.http import Http404

from allauth.account.internal.decorators import login_not_required
from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.views import OAuth2LoginView

from sso.providers.callback import StatefulCallbackView
from sso.providers.oidc.provider import StrictOIDCAdapter


@login_not_required
def login(request, provider_id):
    try:
        return OAuth2LoginView.adapter_view(StrictOIDCAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404("Not found.") from None


@login_not_required
def callback(request, provider_id):
    try:
        return StatefulCallbackView.adapter_view(StrictOIDCAdapter(request, provider_id))(request)
    except SocialApp.DoesNotExist:
        raise Http404("Not found.") from None
