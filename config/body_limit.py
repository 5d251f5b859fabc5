"""Request bodies outside /v1 are bounded before Django reads them.

Django's ASGI handler reads a whole body (into a temporary file past FILE_UPLOAD_MAX_MEMORY_SIZE)
before any view, login check or CSRF check runs, so an unauthenticated 3 GB POST to /login/ would be
written to disk before its 403. `BodyLimit` wraps Django's ASGI app: a declared Content-Length over
the limit is answered 413 at once, without reading; a chunked body is counted as it arrives and cut
off (413, connection closed) as soon as it passes the limit.

The limit is TOLLGATE_MAX_REQUEST_BYTES, unless the view declares a larger one with `accepts_body`
(the cost estimator takes a 5 MB file); a view is only looked up for bodies over the default.
The relay (/v1) bounds its own bodies (TOLLGATE_MAX_BODY_BYTES, relay/app.py).
"""

import json

from django.conf import settings
from django.urls import Resolver404, resolve
from django.utils.translation import gettext as _


def accepts_body(max_bytes: int):
    """Declare that a view takes bodies up to `max_bytes` (function views; APIViews set `max_request_bytes`)."""

    def decorate(view):
        view.max_request_bytes = max_bytes
        return view

    return decorate


def limit_for(path: str) -> int:
    default = settings.TOLLGATE_MAX_REQUEST_BYTES
    try:
        view = resolve(path).func
    except Resolver404:
        return default
    declared = getattr(view, "max_request_bytes", None) or getattr(getattr(view, "cls", None), "max_request_bytes", None)
    return max(default, declared or 0)


class BodyLimit:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared, chunked = None, False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = int(value) if value.isdigit() else None
            elif name == b"transfer-encoding":
                chunked = True
        default = settings.TOLLGATE_MAX_REQUEST_BYTES
        if declared is not None and declared > default:
            limit = limit_for(self._path(scope))
            if declared > limit:
                return await self._refuse(scope, send, limit)
        if not chunked:  # the server never passes on more than the declared length
            return await self.app(scope, receive, send)
        return await self._counted(scope, receive, send, default)

    async def _counted(self, scope, receive, send, limit: int):
        received, refused, widened = 0, False, False

        async def bounded_receive():
            nonlocal received, refused, limit, widened
            message = await receive()
            if message["type"] == "http.request" and not refused:
                received += len(message.get("body", b""))
                if received > limit and not widened:
                    limit, widened = limit_for(self._path(scope)), True
                if received > limit:
                    refused = True
                    await self._refuse(scope, send, limit)
                    return {"type": "http.disconnect"}  # Django stops reading and answers nothing
            return message

        async def guarded_send(message):
            if not refused:
                await send(message)

        return await self.app(scope, bounded_receive, guarded_send)

    @staticmethod
    def _path(scope) -> str:
        path = scope.get("path", "")
        root = scope.get("root_path", "")
        return path[len(root):] if root and path.startswith(root) else path

    @staticmethod
    async def _refuse(scope, send, limit: int) -> None:
        message = _("The request body is too large: at most %(size)s bytes are accepted here.") % {"size": limit}
        if scope.get("path", "").startswith("/api/"):
            body = json.dumps({"error": {"code": "request_too_large", "message": message, "fields": {}}}).encode()
            content_type = b"application/json"
        else:
            body, content_type = message.encode(), b"text/plain; charset=utf-8"
        await send({"type": "http.response.start", "status": 413, "headers": [
            (b"content-type", content_type), (b"content-length", str(len(body)).encode()), (b"connection", b"close"),
        ]})
        await send({"type": "http.response.body", "body": body})
