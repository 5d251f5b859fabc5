"""The usage consumer: a thread in each Celery worker that moves the relay's stream into the ledger as
entries arrive (billing.ledger.usage_consume), started and stopped with the worker by the bootstep in
config/celery.py. It lives in the worker so that a worker's death stops it too and the existing
supervision (Procfile, `make run`) needs nothing new; the beat's billing.usage_drain only reclaims what
a dead consumer left pending.
"""

import logging
import threading

from django.conf import settings
from django.db import connections

from billing import ledger

log = logging.getLogger(__name__)

BLOCK_MS = 1000  # how long one read waits on the stream: also how soon a stop is noticed
RETRY_SECONDS = (1, 2, 5, 10)  # pauses after consecutive failures (Redis or the database away)


class UsageConsumer:
    def __init__(self):
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if not settings.REDIS_URL or self._thread is not None:
            return  # embedded mode: the relay writes the ledger itself
        self._thread = threading.Thread(target=self._run, name="usage-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        import redis

        failures = 0
        while not self._stop.is_set():
            client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=BLOCK_MS / 1000 + 10, socket_connect_timeout=5)
            try:
                ledger.usage_consume(client, self._stop, block_ms=BLOCK_MS)
            except Exception as exc:
                # Entries read and not acknowledged stay pending for this consumer, which takes them
                # again first thing on its next start (ledger.usage_consume).
                pause = RETRY_SECONDS[min(failures, len(RETRY_SECONDS) - 1)]
                failures += 1
                log.warning("usage consumer failed (%s: %s); retrying in %s s", exc.__class__.__name__, str(exc)[:200], pause)
                connections.close_all()  # a broken database connection is not reused
                self._stop.wait(pause)
            else:
                failures = 0
            finally:
                client.close()
        connections.close_all()
