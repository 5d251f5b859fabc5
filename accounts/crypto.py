"""Secrets we issue (virtual keys, API tokens, invitation tokens): random, stored as keyed hashes."""

import hashlib
import hmac
import secrets

from django.conf import settings


def keyed_hash(secret: str) -> str:
    """HMAC-SHA256 under the server's hash secret: a leaked table cannot be brute-forced offline."""
    return hmac.new(settings.TOLLGATE_KEY_HASH_SECRET.encode(), secret.encode(), hashlib.sha256).hexdigest()


def new_secret(prefix: str, nbytes: int = 32) -> str:
    """`prefix` + 32 random bytes (256 bits) in URL-safe base64."""
    return prefix + secrets.token_urlsafe(nbytes)


def visible_prefix(secret: str, length: int = 12) -> str:
    return secret[:length]
