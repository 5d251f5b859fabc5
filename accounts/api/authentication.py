"""Org-scoped admin API tokens: `Authorization: Bearer tgo_…`."""

from django.utils import timezone
from rest_framework import authentication, exceptions

from accounts.crypto import keyed_hash
from accounts.models import ApiToken
from accounts.services import API_TOKEN_PREFIX


class ApiTokenAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request):
        header = authentication.get_authorization_header(request).decode("latin-1")
        scheme, _, secret = header.partition(" ")
        if scheme != self.keyword or not secret.startswith(API_TOKEN_PREFIX):
            return None
        token = (
            ApiToken.objects.select_related("organization", "created_by")
            .filter(token_hash=keyed_hash(secret.strip()), revoked_at=None)
            .first()
        )
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid or revoked API token.")
        if token.last_used_at is None or (timezone.now() - token.last_used_at).total_seconds() > 60:
            ApiToken.objects.filter(pk=token.pk).update(last_used_at=timezone.now())
        return (TokenUser(token), token)

    def authenticate_header(self, request):
        return self.keyword


class TokenUser:
    """The principal of an API token: authenticated, acting for its organization only."""

    is_authenticated = True
    is_anonymous = False
    is_active = True
    is_staff = False
    is_superuser = False
    pk = None
    id = None

    def __init__(self, token: ApiToken):
        self.token = token

    def __str__(self):
        return f"api-token:{self.token.prefix}"
