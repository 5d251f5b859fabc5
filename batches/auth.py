"""Virtual-key authentication for the Django-served /v1 endpoints (files, batches): the same keys, headers
and keyed hash as the relay (relay.pipeline._authenticate)."""

from django.utils import timezone

from accounts.crypto import keyed_hash
from keys.models import VirtualKey
from keys.selectors import active_key_by_hash

KEY_HEADERS = ("HTTP_AUTHORIZATION", "HTTP_API_KEY", "HTTP_X_API_KEY")


def request_key(request) -> VirtualKey | None:
    """The active virtual key the request carries, or None."""
    secret = ""
    for name in KEY_HEADERS:
        value = request.META.get(name, "")
        if value:
            secret = value[7:].strip() if name == "HTTP_AUTHORIZATION" and value[:7].lower() == "bearer " else value.strip()
            break
    if not secret or len(secret) > 200:
        return None
    now = timezone.now()
    key = active_key_by_hash(keyed_hash(secret), now=now)
    if key is None or (key.expires_at is not None and key.expires_at <= now):
        return None
    if key.key_hash != keyed_hash(secret) and key.previous_valid_until and key.previous_valid_until <= now:
        return None
    return key
