"""Provider secrets at rest: MultiFernet over TOLLGATE_ENCRYPTION_KEYS (newest first).

Rotation: put a new key first, keep the old ones after it, run `manage.py tollgate_rotate_credentials`
to re-encrypt every stored secret under the new key, then drop the old key.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([Fernet(key.encode()) for key in keys])


def _current() -> MultiFernet:
    return _fernet(tuple(settings.TOLLGATE_ENCRYPTION_KEYS))


def encrypt(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode() if plaintext else ""


def decrypt(token: str) -> str:
    if not token:
        return ""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken as exc:
        raise ValueError("A stored secret cannot be decrypted with the configured TOLLGATE_ENCRYPTION_KEYS.") from exc


def rotate(token: str) -> str:
    """Re-encrypt under the primary key."""
    return _current().rotate(token.encode()).decode() if token else ""
