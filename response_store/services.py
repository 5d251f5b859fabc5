"""Keeping, reading and deleting stored responses; every call is scoped to one organization."""

from datetime import timedelta

from django.conf import settings
from django.utils import timezone

from response_store.models import StoredResponse


def response_save(*, organization_id: int, key_id: int | None, response: dict, items: list) -> StoredResponse:
    now = timezone.now()
    return StoredResponse.objects.create(
        id=response["id"], organization_id=organization_id, key_id=key_id, model_name=str(response.get("model") or "")[:120],
        response=response, items=items, created_at=now,
        expires_at=now + timedelta(days=settings.TOLLGATE_RESPONSES_RETENTION_DAYS),
    )


def response_get(*, organization_id: int, response_id: str) -> StoredResponse | None:
    """The organization's response with this id, unless it has expired; another organization's is never found."""
    return StoredResponse.objects.filter(id=response_id, organization_id=organization_id, expires_at__gt=timezone.now()).first()


def response_delete(*, organization_id: int, response_id: str) -> bool:
    deleted, _ = StoredResponse.objects.filter(id=response_id, organization_id=organization_id, expires_at__gt=timezone.now()).delete()
    return bool(deleted)


def responses_expire() -> int:
    """Delete every response past its retention period; returns how many."""
    deleted, _ = StoredResponse.objects.filter(expires_at__lte=timezone.now()).delete()
    return deleted
