"""The one place that reads the environment, and the local secrets of the embedded default.

With DEBUG on and nothing set, secrets are generated once into the data folder so that a
newcomer's `make run` works; in production every secret must come from the environment
(`config.safety` refuses to start otherwise).
"""

import base64
import os
import secrets
from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

DATA_DIR = Path(env("TOLLGATE_DATA_DIR", default=str(BASE_DIR / "data")))


def local_secret(name: str, make) -> str:
    """Read a secret from the data folder, creating it (mode 0600) on first use."""
    DATA_DIR.mkdir(parents=True, exist_ok=True)
    path = DATA_DIR / name
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(make())
    return path.read_text().strip()


def new_token() -> str:
    return secrets.token_urlsafe(50)


def new_fernet_key() -> str:
    return base64.urlsafe_b64encode(secrets.token_bytes(32)).decode()
