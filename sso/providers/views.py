"""The login and callback views of an OAuth2 provider, answering 404 when no organization's connection applies.

allauth raises SocialApp.DoesNotExist when no app matches (here: no sign-in was started for an organization
of this kind in this session), which would otherwise be a 500.
"""

from functools import wraps

from allauth.socialaccount.models import SocialApp
from allauth.socialaccount.providers.oauth2.views import OAuth2LoginView
from django.http import Http404

from sso.providers.callback import StatefulCallbackView


def _not_found_without_app(view):
    @wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except SocialApp.DoesNotExist:
            raise Http404("Not found.") from None

    return wrapper


def oauth2_views(adapter_class):
    """(login view, callback view) for an adapter class."""
    return (
        _not_found_without_app(OAuth2LoginView.adapter_view(adapter_class)),
        _not_found_without_app(StatefulCallbackView.adapter_view(adapter_class)),
    )
