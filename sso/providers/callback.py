"""allauth's OAuth2 callback view, keeping the unstashed state on the adapter so checks can read it (the OIDC nonce)."""

from allauth.socialaccount.providers.oauth2.views import OAuth2CallbackView


class StatefulCallbackView(OAuth2CallbackView):
    def _get_state(self, request, provider):
        state, response = super()._get_state(request, provider)
        self.adapter.state = state or {}
        return state, response
