"""ASGI entry point: `/v1/*` (but /v1/files and /v1/batches, the Files and Batches API, which Django
serves) and the operator endpoints (`/healthz`, `/readyz`, `/metrics`) go to the
relay's lean ASGI app, everything else to Django.

The relay stays outside Django's request cycle (DESIGN.md: about 890 µs per request through
Django against about 150 µs raw); Django still owns settings, models and the ORM it uses.
"""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from django.core.asgi import get_asgi_application  # noqa: E402

from config.body_limit import BodyLimit  # noqa: E402
from relay.app import RelayApp  # noqa: E402
from relay.probes import PATHS as PROBES  # noqa: E402

# Bodies outside /v1 are capped before Django reads them (config/body_limit.py).
django_application = BodyLimit(get_asgi_application())
relay_application = RelayApp()
# OpenAI's Files and Batches API: control plane, not the hot path, served by Django (batches/api.py).
DJANGO_V1 = ("/v1/files", "/v1/batches")
DJANGO_V1_PREFIXES = ("/v1/files/", "/v1/batches/")


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        return await relay_application(scope, receive, send)
    path = scope.get("path", "")
    if path in DJANGO_V1 or path.startswith(DJANGO_V1_PREFIXES):
        return await django_application(scope, receive, send)
    if path == "/v1" or path.startswith("/v1/") or path in PROBES:
        return await relay_application(scope, receive, send)
    return await django_application(scope, receive, send)
