"""Database access from the relay's event loop: in a worker thread, with connection hygiene.

The relay has no request cycle to close connections, so each call closes a connection that is
broken or past CONN_MAX_AGE first and after (a restarted PostgreSQL costs one failed load, not
a stuck worker).
"""

from asgiref.sync import sync_to_async
from django.db import close_old_connections


def _call(fn, args, kwargs):
    close_old_connections()
    try:
        return fn(*args, **kwargs)
    finally:
        close_old_connections()


async def run_db(fn, *args, **kwargs):
    return await sync_to_async(_call, thread_sensitive=False)(fn, args, kwargs)
