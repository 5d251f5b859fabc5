"""Reads for keys, credentials and models, including the immutable snapshots the relay caches.

The relay imports only this module from `keys` (STYLE.md): snapshots are plain frozen
dataclasses, built here in one query each and never touched by the ORM afterwards.
"""

from dataclasses import dataclass

import orjson
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from keys import encryption
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from keys.presets import PRESETS
from relay.providers.base import Target


@dataclass(frozen=True)
class KeySnapshot:
    id: int
    organization_id: int
    team_id: int | None
    user_id: int | None
    name: str
    allowed_models: frozenset[str]  # empty: every model
    expires_at: float | None  # epoch seconds
    rpm_limit: int | None
    tpm_limit: int | None
    currency: str
    time_zone: str


@dataclass(frozen=True)
class DeploymentSnapshot:
    target: Target
    weight: int
    order: int
    name: str


@dataclass(frozen=True)
class ModelSnapshot:
    id: int
    organization_id: int
    name: str
    routing: str
    deployments: tuple[DeploymentSnapshot, ...]
    created: int


def key_snapshot_by_hash(key_hash: str) -> KeySnapshot | None:
    """The active key with this hash (current secret, or a rotated one still in its grace period)."""
    now = timezone.now()
    key = (
        VirtualKey.objects.select_related("organization")
        .filter(Q(key_hash=key_hash) | Q(previous_key_hash=key_hash, previous_valid_until__gt=now), revoked_at=None)
        .first()
    )
    if key is None:
        return None
    expires = key.expires_at
    if key.key_hash != key_hash and key.previous_valid_until and (expires is None or key.previous_valid_until < expires):
        expires = key.previous_valid_until
    return KeySnapshot(
        id=key.pk,
        organization_id=key.organization_id,
        team_id=key.team_id,
        user_id=key.user_id,
        name=key.name,
        allowed_models=frozenset(key.allowed_models or ()),
        expires_at=expires.timestamp() if expires else None,
        rpm_limit=key.rpm_limit,
        tpm_limit=key.tpm_limit,
        currency=key.organization.currency,
        time_zone=key.organization.time_zone,
    )


def target_for(deployment: Deployment) -> Target:
    credential = deployment.credential
    preset = PRESETS[credential.provider]
    return Target(
        deployment_id=deployment.pk,
        provider=credential.provider,
        wire=preset.wire,
        base_url=credential.base_url or preset.base_url,
        api_key=encryption.decrypt(credential.api_key_encrypted),
        upstream_model=deployment.upstream_model,
        api_version=credential.api_version,
        extra_headers=credential_extra_headers(credential),
        connect_timeout=credential.connect_timeout,
        read_timeout=credential.read_timeout,
        stream_usage=preset.stream_usage,
    )


def credential_extra_headers(credential: ProviderCredential) -> dict[str, str]:
    raw = encryption.decrypt(credential.extra_headers_encrypted)
    return orjson.loads(raw) if raw else {}


def model_snapshot(*, organization_id: int, name: str) -> ModelSnapshot | None:
    deployments = Deployment.objects.filter(is_active=True).select_related("credential").order_by("order", "id")
    model = (
        Model.objects.filter(organization_id=organization_id, name=name, is_active=True)
        .prefetch_related(Prefetch("deployments", queryset=deployments))
        .first()
    )
    if model is None:
        return None
    return ModelSnapshot(
        id=model.pk,
        organization_id=organization_id,
        name=model.name,
        routing=model.routing,
        deployments=tuple(DeploymentSnapshot(target_for(d), d.weight, d.order, str(d)) for d in model.deployments.all()),
        created=int(model.created_at.timestamp()),
    )


def model_names(*, organization_id: int) -> list[tuple[str, int]]:
    """(name, created) of the organization's active models, for GET /v1/models."""
    rows = Model.objects.filter(organization_id=organization_id, is_active=True).values_list("name", "created_at")
    return [(name, int(created.timestamp())) for name, created in rows]


def virtual_key_list(*, organization, user=None, only_own: bool = False) -> QuerySet[VirtualKey]:
    keys = VirtualKey.objects.filter(organization=organization).select_related("team", "user")
    return keys.filter(user=user) if only_own else keys


def credential_list(*, organization) -> QuerySet[ProviderCredential]:
    return ProviderCredential.objects.filter(organization=organization)


def model_list(*, organization) -> QuerySet[Model]:
    deployments = Deployment.objects.select_related("credential").order_by("order", "id")
    return Model.objects.filter(organization=organization).prefetch_related(Prefetch("deployments", queryset=deployments))
