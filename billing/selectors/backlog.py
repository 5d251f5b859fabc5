"""How far the ledger is behind the relay: the usage stream's backlog and the refused records (billing.ledger)."""

from django.conf import settings

from billing import ledger
from billing.models import UsageDeadLetter


def usage_backlog_status(*, organization, staff: bool) -> dict:
    """The stream figures (null when unknown: embedded mode or Redis unreachable), this organization's dead
    letters, and every organization's for staff."""
    body = {"stream": False, "waiting": None, "pending": None, "oldest_age_seconds": None,
            "dead_letters": UsageDeadLetter.objects.filter(organization=organization).count()}
    if settings.REDIS_URL:
        import redis  # only where Redis is configured (the embedded default never gets here)

        client = redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)
        try:
            body.update(ledger.usage_backlog(client), stream=True)
        except redis.RedisError:
            pass  # the figures stay null: unknown, not zero
        finally:
            client.close()
    if staff:
        body["dead_letters_all"] = UsageDeadLetter.objects.count()
    return body
