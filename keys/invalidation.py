"""The configuration version that tells every relay process to drop its cached snapshots.

Writers bump it after commit; relay processes poll it in the background (relay.cache), so a
revoked or edited key takes effect everywhere within the poll interval without any per-request
round trip. Redis holds it when configured; the embedded default uses a file in the data folder.
"""

import os
import time

from django.conf import settings

from config.env import DATA_DIR
from wire import redis_keys

REDIS_KEY = redis_keys.CONFIG_VERSION


def config_changed() -> None:
    if settings.REDIS_URL:
        import redis

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            client.incr(REDIS_KEY)
        except redis.RedisError:
            # Relay caches also expire on their own TTL; a missed bump delays, never loses, a change.
            pass
        finally:
            client.close()
    else:
        path = local_version_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(str(time.time_ns()))
        os.replace(tmp, path)


def local_version_path():
    return DATA_DIR / "config.version"
