"""Reads for keys, credentials and models (the relay's snapshots of them are relay.snapshots)."""

import orjson
from django.db.models import Prefetch, Q, QuerySet
from django.utils import timezone

from accounts.permissions import Perm
from keys import encryption
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from wire.adapters.base import Target
from wire.presets import PRESETS


def active_key_by_hash(key_hash: str, *, now=None) -> VirtualKey | None:
    """The unrevoked key with this hash: its current secret, or a rotated one still in its grace period
    (expiry is the caller's to check)."""
    now = now or timezone.now()
    return (
        VirtualKey.objects.select_related("organization")
        .filter(Q(key_hash=key_hash) | Q(previous_key_hash=key_hash, previous_valid_until__gt=now), revoked_at=None)
        .first()
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


def virtual_key_list(*, organization, user=None, only_own: bool = False) -> QuerySet[VirtualKey]:
    keys = VirtualKey.objects.filter(organization=organization).select_related("team", "user")
    return keys.filter(user=user) if only_own else keys


def virtual_key_visible_list(
    *, actor, team_id: int | None = None, user_id: int | None = None, revoked: bool | None = None
) -> QuerySet[VirtualKey]:
    """The keys `actor` (an OrgContext) may see: all of the organization's with manage_keys, else only their own."""
    if actor.can(Perm.MANAGE_KEYS):
        keys = virtual_key_list(organization=actor.organization)
    elif actor.user is not None and actor.can(Perm.MANAGE_OWN_KEYS):
        keys = virtual_key_list(organization=actor.organization, user=actor.user, only_own=True)
    else:
        # No person behind the caller (a token whose creator left): "own" would match the unowned keys.
        return VirtualKey.objects.none()
    if team_id is not None:
        keys = keys.filter(team_id=team_id)
    if user_id is not None:
        keys = keys.filter(user_id=user_id)
    if revoked is not None:
        keys = keys.filter(revoked_at__isnull=not revoked)
    return keys


def credential_list(*, organization) -> QuerySet[ProviderCredential]:
    return ProviderCredential.objects.filter(organization=organization)


def model_list(*, organization) -> QuerySet[Model]:
    deployments = Deployment.objects.select_related("credential").order_by("order", "id")
    return Model.objects.filter(organization=organization).prefetch_related(Prefetch("deployments", queryset=deployments))
