"""Writes for virtual keys, provider credentials, models and deployments.

Every write bumps the configuration version after commit, so relay processes drop their cached
snapshots within a poll interval. Secrets are returned once and never stored or logged in clear.
"""

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

import orjson
from django.core.validators import RegexValidator
from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.crypto import keyed_hash, new_secret, visible_prefix
from accounts.errors import ApplicationError
from accounts.models import Team, User
from accounts.permissions import Perm, has_perm
from accounts.services import audit_record
from accounts.tenancy import OrgContext
from keys import encryption
from keys.invalidation import config_changed
from keys.models import Deployment, Model, ProviderCredential, VirtualKey
from wire.presets import DEFAULT_CONNECT_TIMEOUT, DEFAULT_READ_TIMEOUT, PRESETS

VIRTUAL_KEY_PREFIX = "tg-"


def _changed() -> None:
    transaction.on_commit(config_changed)


def _require(allowed: bool) -> None:
    if not allowed:
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)


def can_manage_key(actor: OrgContext, key: VirtualKey) -> bool:
    if has_perm(actor.role, Perm.MANAGE_KEYS):
        return True
    own = actor.user is not None and key.user_id == getattr(actor.user, "pk", None)
    return own and has_perm(actor.role, Perm.MANAGE_OWN_KEYS)


def _check_models(organization, names) -> list[str]:
    if names is None:
        return []
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ApplicationError(_("Allowed models must be a list of model names."), field="allowed_models")
    known = set(Model.objects.filter(organization=organization, name__in=names).values_list("name", flat=True))
    unknown = [n for n in names if n not in known]
    if unknown:
        raise ApplicationError(_("Unknown model: %(name)s") % {"name": unknown[0]}, field="allowed_models")
    return sorted(set(names))


def _check_limit(value, field: str):
    if value in (None, ""):
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ApplicationError(_("Use a whole number of at least 1, or leave empty for no limit."), field=field)
    return value


@transaction.atomic
def virtual_key_create(
    *, actor: OrgContext, name: str, user: User | None = None, team: Team | None = None, allowed_models=None,
    expires_at=None, rpm_limit=None, tpm_limit=None, metadata=None, ip=None, **flags,
) -> tuple[VirtualKey, str]:
    """Create a key; returns (key, secret). The secret is shown once and only its keyed hash is kept.
    `flags`: any of KEY_FLAGS."""
    if set(flags) - set(KEY_FLAGS):
        raise TypeError(f"unknown key fields: {sorted(set(flags) - set(KEY_FLAGS))}")
    org = actor.organization
    if has_perm(actor.role, Perm.MANAGE_KEYS):
        owner = user
    else:
        _require(has_perm(actor.role, Perm.MANAGE_OWN_KEYS))
        if user is not None and user != actor.user:
            raise ApplicationError(_("You can only create keys for yourself."), field="user", code="permission_denied", status=403)
        owner = actor.user
    if owner is not None and not owner.memberships.filter(organization=org).exists():
        raise ApplicationError(_("Unknown user."), field="user", code="not_found")
    if team is not None and team.organization_id != org.pk:
        raise ApplicationError(_("Unknown team."), field="team", code="not_found")
    if team is not None and not has_perm(actor.role, Perm.MANAGE_KEYS) and not team.memberships.filter(user=actor.user).exists():
        raise ApplicationError(_("You are not a member of this team."), field="team", code="permission_denied", status=403)
    if not name or not name.strip():
        raise ApplicationError(_("A key needs a name."), field="name")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApplicationError(_("The expiry must be in the future."), field="expires_at")
    secret = new_secret(VIRTUAL_KEY_PREFIX)
    key = VirtualKey.objects.create(
        organization=org, team=team, user=owner, name=name.strip(), prefix=visible_prefix(secret),
        key_hash=keyed_hash(secret), allowed_models=_check_models(org, allowed_models), expires_at=expires_at,
        rpm_limit=_check_limit(rpm_limit, "rpm_limit"), tpm_limit=_check_limit(tpm_limit, "tpm_limit"),
        metadata=metadata or {}, created_by=actor.user, **_key_flags(flags),
    )
    audit_record(organization=org, actor=actor.user, action="key.create", target=key, ip=ip)
    _changed()
    return key, secret


@transaction.atomic
def virtual_key_update(*, actor: OrgContext, key: VirtualKey, ip=None, **changes) -> VirtualKey:
    _require(can_manage_key(actor, key))
    if "name" in changes:
        if not str(changes["name"] or "").strip():
            raise ApplicationError(_("A key needs a name."), field="name")
        key.name = changes["name"].strip()
    if "allowed_models" in changes:
        key.allowed_models = _check_models(key.organization, changes["allowed_models"])
    for field in ("rpm_limit", "tpm_limit"):
        if field in changes:
            setattr(key, field, _check_limit(changes[field], field))
    if "expires_at" in changes:
        expires_at = changes["expires_at"]
        # As on create; an unchanged past expiry (an edit form resubmitting it) is left alone.
        if expires_at is not None and expires_at != key.expires_at and expires_at <= timezone.now():
            raise ApplicationError(_("The expiry must be in the future."), field="expires_at")
        key.expires_at = changes["expires_at"]
    if "metadata" in changes:
        key.metadata = changes["metadata"] or {}
    for field, value in _key_flags(changes).items():
        setattr(key, field, value)
    key.save()
    audit_record(organization=key.organization, actor=actor.user, action="key.update", target=key, data={"fields": sorted(changes)}, ip=ip)
    _changed()
    return key


# README "Sandbox keys" and "Response cache": yes/no switches of a key (and, the last three, of a model).
KEY_FLAGS = ("sandbox", "response_cache", "cache_any_temperature", "cache_tool_calls")
CACHE_FLAGS = KEY_FLAGS[1:]


def _key_flags(values: dict, names=KEY_FLAGS) -> dict:
    flags = {}
    for name in names:
        if name in values and values[name] is not None:
            if not isinstance(values[name], bool):
                raise ApplicationError(_("Use true or false."), field=name)
            flags[name] = values[name]
    return flags


@transaction.atomic
def virtual_key_rotate(*, actor: OrgContext, key: VirtualKey, grace_seconds: int = 0, ip=None) -> tuple[VirtualKey, str]:
    """A new secret; the old one keeps working for `grace_seconds` (0: stops at once)."""
    _require(can_manage_key(actor, key))
    if key.revoked_at is not None:
        raise ApplicationError(_("A revoked key cannot be rotated."), code="revoked")
    if not isinstance(grace_seconds, int) or not 0 <= grace_seconds <= 30 * 86400:
        raise ApplicationError(_("The grace period must be between 0 and 30 days."), field="grace_seconds")
    secret = new_secret(VIRTUAL_KEY_PREFIX)
    if grace_seconds:
        key.previous_key_hash, key.previous_valid_until = key.key_hash, timezone.now() + timedelta(seconds=grace_seconds)
    else:
        key.previous_key_hash, key.previous_valid_until = None, None
    key.key_hash, key.prefix = keyed_hash(secret), visible_prefix(secret)
    key.save()
    audit_record(organization=key.organization, actor=actor.user, action="key.rotate", target=key, data={"grace_seconds": grace_seconds}, ip=ip)
    _changed()
    return key, secret


@transaction.atomic
def virtual_key_revoke(*, actor: OrgContext, key: VirtualKey, ip=None) -> VirtualKey:
    _require(can_manage_key(actor, key))
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.previous_key_hash, key.previous_valid_until = None, None
        key.save()
        audit_record(organization=key.organization, actor=actor.user, action="key.revoke", target=key, ip=ip)
    _changed()
    return key


def _clean_headers(headers) -> dict[str, str]:
    if headers in (None, ""):
        return {}
    if not isinstance(headers, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in headers.items()):
        raise ApplicationError(_("Extra headers must be an object of string names to string values."), field="extra_headers")
    for name, value in headers.items():
        if any(c in name + value for c in "\r\n\x00") or not name.strip():
            raise ApplicationError(_("Header names and values may not contain line breaks."), field="extra_headers")
        if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
            raise ApplicationError(_("The header %(name)s cannot be set.") % {"name": name}, field="extra_headers")
    return headers


def _check_api_key(api_key) -> None:
    """The key travels in a header: a line break would end it (or inject another), so it is refused, not trimmed."""
    if not isinstance(api_key, str) or any(c in api_key for c in "\r\n\x00"):
        raise ApplicationError(_("The key may not contain line breaks."), field="api_key")


def _check_api_version(api_version) -> str:
    """Azure's api-version goes into the request URL: a date and letters only."""
    api_version = (api_version or "").strip()
    if not re.fullmatch(r"[A-Za-z0-9._-]{0,40}", api_version):
        raise ApplicationError(str(RegexValidator.message), field="api_version")  # Django's "Enter a valid value."
    return api_version


def _check_base_url(provider: str, base_url: str) -> str:
    from keys.egress import check_url

    preset = PRESETS.get(provider)
    if preset is None:
        raise ApplicationError(_("Unknown provider."), field="provider", code="invalid_choice")
    given = (base_url or "").strip()
    url = given or preset.base_url
    if not url:
        raise ApplicationError(_("This provider needs a base URL."), field="base_url")
    if preset.wire != "mock":
        # No lookup here (saving works offline and under split DNS); the egress check runs when connecting.
        # A refused default URL is the preset's fault, not the empty field's.
        check_url(url, field="base_url" if given else "provider")
    return url.rstrip("/")


def _check_threshold(value) -> Decimal | None:
    if value is None or value == "":
        return None
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite() or amount < 0 or amount >= Decimal("1e14"):
        raise ApplicationError(_("Enter an amount of 0 or more."), field="low_balance_threshold")
    return amount


@transaction.atomic
def credential_create(
    *, actor: OrgContext, name: str, provider: str, api_key: str = "", base_url: str = "", api_version: str = "",
    extra_headers=None, connect_timeout: float = DEFAULT_CONNECT_TIMEOUT, read_timeout: float = DEFAULT_READ_TIMEOUT,
    low_balance_threshold=None, ip=None,
) -> ProviderCredential:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    org = actor.organization
    if not name or not name.strip():
        raise ApplicationError(_("A credential needs a name."), field="name")
    if ProviderCredential.objects.filter(organization=org, name=name.strip()).exists():
        raise ApplicationError(_("A credential with this name already exists."), field="name", code="duplicate")
    url = _check_base_url(provider, base_url)
    if PRESETS[provider].wire != "mock" and not api_key:
        raise ApplicationError(_("An API key is required."), field="api_key")
    _check_api_key(api_key)
    credential = ProviderCredential(
        organization=org, name=name.strip(), provider=provider, base_url=url, api_version=_check_api_version(api_version),
        api_key_encrypted=encryption.encrypt(api_key), api_key_hint=api_key[-4:] if len(api_key) >= 12 else "",
        extra_headers_encrypted=encryption.encrypt(orjson.dumps(_clean_headers(extra_headers)).decode()) if extra_headers else "",
        connect_timeout=connect_timeout, read_timeout=read_timeout, low_balance_threshold=_check_threshold(low_balance_threshold),
    )
    credential.full_clean(exclude=["base_url"])
    credential.save()
    audit_record(organization=org, actor=actor.user, action="credential.create", target=credential, data={"provider": provider}, ip=ip)
    _changed()
    return credential


@transaction.atomic
def credential_update(*, actor: OrgContext, credential: ProviderCredential, ip=None, **changes) -> ProviderCredential:
    """Update fields; `api_key` replaces the secret only when given (the old one is never shown)."""
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    if "name" in changes and changes["name"]:
        name = changes["name"].strip()
        if ProviderCredential.objects.filter(organization=credential.organization, name=name).exclude(pk=credential.pk).exists():
            raise ApplicationError(_("A credential with this name already exists."), field="name", code="duplicate")
        credential.name = name
    if "base_url" in changes:
        credential.base_url = _check_base_url(credential.provider, changes["base_url"])
    if changes.get("api_key"):
        _check_api_key(changes["api_key"])
        credential.api_key_encrypted = encryption.encrypt(changes["api_key"])
        credential.api_key_hint = changes["api_key"][-4:] if len(changes["api_key"]) >= 12 else ""
    if "extra_headers" in changes:
        headers = _clean_headers(changes["extra_headers"])
        credential.extra_headers_encrypted = encryption.encrypt(orjson.dumps(headers).decode()) if headers else ""
    if changes.get("api_version") is not None:
        changes["api_version"] = _check_api_version(changes["api_version"])
    for field in ("api_version", "connect_timeout", "read_timeout"):
        if field in changes and changes[field] is not None:
            setattr(credential, field, changes[field])
    if "low_balance_threshold" in changes:  # None clears it
        credential.low_balance_threshold = _check_threshold(changes["low_balance_threshold"])
    credential.full_clean(exclude=["base_url"])
    credential.save()
    audit_record(organization=credential.organization, actor=actor.user, action="credential.update", target=credential,
                 data={"fields": sorted(k for k in changes if k != "api_key") + (["api_key"] if changes.get("api_key") else [])}, ip=ip)
    _changed()
    return credential


@transaction.atomic
def credential_delete(*, actor: OrgContext, credential: ProviderCredential, ip=None) -> None:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    if credential.deployments.exists():
        raise ApplicationError(_("Remove the deployments using this credential first."), code="in_use")
    audit_record(organization=credential.organization, actor=actor.user, action="credential.delete", target=credential, ip=ip)
    credential.delete()
    _changed()


def credentials_reencrypt() -> int:
    """Re-encrypt every stored provider secret under the primary key (after adding a new one)."""
    count = 0
    for credential in ProviderCredential.objects.all().iterator():
        credential.api_key_encrypted = encryption.rotate(credential.api_key_encrypted)
        credential.extra_headers_encrypted = encryption.rotate(credential.extra_headers_encrypted)
        credential.save(update_fields=["api_key_encrypted", "extra_headers_encrypted"])
        count += 1
    return count


@transaction.atomic
def model_create(*, actor: OrgContext, name: str, description: str = "", routing: str = Model.Routing.WEIGHTED, ip=None, **policy) -> Model:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    name = (name or "").strip()
    if not name or any(c in name for c in "\x00\r\n") or len(name) > 120:
        raise ApplicationError(_("A model needs a name without line breaks, at most 120 characters."), field="name")
    if Model.objects.filter(organization=actor.organization, name=name).exists():
        raise ApplicationError(_("A model with this name already exists."), field="name", code="duplicate")
    if routing not in Model.Routing.values:
        raise ApplicationError(_("Unknown routing."), field="routing", code="invalid_choice")
    model = Model(organization=actor.organization, name=name, description=description, routing=routing)
    _apply_policy(model, policy)
    model.save()
    audit_record(organization=actor.organization, actor=actor.user, action="model.create", target=model, ip=ip)
    _changed()
    return model


POLICY_BOUNDS = {
    "max_attempts": (1, 10), "retries_per_deployment": (0, 5), "deadline_seconds": (1, 3600),
    "stream_deadline_seconds": (1, 86400),
    "cooldown_failures": (1, 1000), "cooldown_window_seconds": (1, 86400), "cooldown_seconds": (1, 86400),
}


def _apply_policy(model: Model, changes: dict) -> None:
    """Validate and set the routing policy fields present in `changes`."""
    for field, (low, high) in POLICY_BOUNDS.items():
        if field in changes and changes[field] is not None:
            value = changes[field]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise ApplicationError(_("Use a whole number from %(low)s to %(high)s.") % {"low": low, "high": high}, field=field)
            setattr(model, field, value)
    if "retry_statuses" in changes:
        statuses = changes["retry_statuses"] or []
        if not isinstance(statuses, list) or not all(isinstance(c, int) and 400 <= c <= 599 for c in statuses):
            raise ApplicationError(_("List HTTP status codes between 400 and 599."), field="retry_statuses")
        model.retry_statuses = sorted(set(statuses))
    if "fallback_max_price_ratio" in changes:
        ratio = changes["fallback_max_price_ratio"]
        if ratio not in (None, ""):
            try:
                ratio = Decimal(str(ratio))
            except InvalidOperation as exc:
                raise ApplicationError(_("Enter a number."), field="fallback_max_price_ratio") from exc
            if not ratio.is_finite() or ratio < 1 or ratio > 1000:
                raise ApplicationError(_("Use a ratio of at least 1."), field="fallback_max_price_ratio")
        model.fallback_max_price_ratio = ratio or None
    if "context_fallback" in changes and changes["context_fallback"] is not None:
        model.context_fallback = bool(changes["context_fallback"])
    for field, value in _key_flags(changes, CACHE_FLAGS).items():
        setattr(model, field, value)
    if "fallback_models" in changes:
        model.fallback_models = _check_fallbacks(model, changes["fallback_models"] or [])


def _check_fallbacks(model: Model, names) -> list[str]:
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ApplicationError(_("Fallback models must be a list of model names."), field="fallback_models")
    names = list(dict.fromkeys(n.strip() for n in names if n.strip()))
    graph = dict(Model.objects.filter(organization=model.organization).exclude(pk=model.pk).values_list("name", "fallback_models"))
    unknown = [n for n in names if n not in graph]
    if unknown:
        raise ApplicationError(_("Unknown model: %(name)s") % {"name": unknown[0]}, field="fallback_models")
    graph[model.name] = names
    # No cycles: a fallback chain that returns to a model would loop (or silently stop) at run time.
    visiting, done = set(), set()

    def visit(name):
        if name in done:
            return
        if name in visiting:
            raise ApplicationError(_("These fallbacks form a cycle through %(name)s.") % {"name": name}, field="fallback_models")
        visiting.add(name)
        for nxt in graph.get(name) or []:
            visit(nxt)
        visiting.discard(name)
        done.add(name)

    visit(model.name)
    return names


@transaction.atomic
def model_update(*, actor: OrgContext, model: Model, ip=None, **changes) -> Model:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    for field in ("description", "routing", "is_active"):
        if field in changes and changes[field] is not None:
            setattr(model, field, changes[field])
    if model.routing not in Model.Routing.values:
        raise ApplicationError(_("Unknown routing."), field="routing", code="invalid_choice")
    _apply_policy(model, changes)
    model.save()
    audit_record(organization=model.organization, actor=actor.user, action="model.update", target=model, data={"fields": sorted(changes)}, ip=ip)
    _changed()
    return model


@transaction.atomic
def model_delete(*, actor: OrgContext, model: Model, ip=None) -> None:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    audit_record(organization=model.organization, actor=actor.user, action="model.delete", target=model, ip=ip)
    model.delete()
    _changed()


def _check_upstream_model(upstream_model) -> str:
    upstream_model = (upstream_model or "").strip()
    if not upstream_model or any(c in upstream_model for c in "\x00\r\n"):
        raise ApplicationError(_("Name the model at the provider."), field="upstream_model")
    return upstream_model


def _check_deployment_fields(credential, weight, order):
    if isinstance(weight, bool) or not isinstance(weight, int) or weight < 0:
        raise ApplicationError(_("The weight must be a whole number of 0 or more."), field="weight")
    if isinstance(order, bool) or not isinstance(order, int) or order < 0:
        raise ApplicationError(_("The order must be a whole number of 0 or more."), field="order")


@transaction.atomic
def deployment_create(
    *, actor: OrgContext, model: Model, credential: ProviderCredential, upstream_model: str, name: str = "",
    weight: int = 1, order: int = 0, context_window: int | None = None, ip=None,
) -> Deployment:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    if model.organization_id != actor.organization.pk:
        raise ApplicationError(_("Unknown model."), field="model", code="not_found", status=404)
    if credential.organization_id != actor.organization.pk:
        raise ApplicationError(_("Unknown credential."), field="credential", code="not_found")
    upstream_model = _check_upstream_model(upstream_model)
    _check_deployment_fields(credential, weight, order)
    deployment = Deployment.objects.create(
        organization=actor.organization, model=model, credential=credential, upstream_model=upstream_model,
        name=name.strip(), weight=weight, order=order, context_window=context_window or None,
    )
    audit_record(organization=actor.organization, actor=actor.user, action="deployment.create", target=deployment, ip=ip)
    _changed()
    return deployment


@transaction.atomic
def deployment_update(*, actor: OrgContext, deployment: Deployment, ip=None, **changes) -> Deployment:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    if "credential" in changes and changes["credential"] is not None:
        if changes["credential"].organization_id != deployment.organization_id:
            raise ApplicationError(_("Unknown credential."), field="credential", code="not_found")
        deployment.credential = changes["credential"]
    if changes.get("upstream_model") is not None:
        deployment.upstream_model = _check_upstream_model(changes["upstream_model"])
    for field in ("name", "weight", "order", "is_active"):
        if field in changes and changes[field] is not None:
            setattr(deployment, field, changes[field])
    if changes.get("probe") is not None:
        if changes["probe"] not in Deployment.Probe.values:
            raise ApplicationError(_("Unknown probe."), field="probe", code="invalid_choice")
        deployment.probe = changes["probe"]
    _check_deployment_fields(deployment.credential, deployment.weight, deployment.order)
    if "context_window" in changes:
        deployment.context_window = changes["context_window"] or None
    if not deployment.is_active:
        _check_keeps_an_active_deployment(deployment)
    deployment.save()
    audit_record(organization=deployment.organization, actor=actor.user, action="deployment.update", target=deployment, data={"fields": sorted(changes)}, ip=ip)
    _changed()
    return deployment


def _check_keeps_an_active_deployment(deployment: Deployment) -> None:
    model = deployment.model
    others = model.deployments.filter(is_active=True).exclude(pk=deployment.pk)
    if model.is_active and not others.exists():
        raise ApplicationError(
            _("An active model needs at least one active deployment; deactivate the model first."), field="is_active", code="last_deployment"
        )


@transaction.atomic
def deployment_delete(*, actor: OrgContext, deployment: Deployment, ip=None) -> None:
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    _check_keeps_an_active_deployment(deployment)
    audit_record(organization=deployment.organization, actor=actor.user, action="deployment.delete", target=deployment, ip=ip)
    deployment.delete()
    _changed()


MAX_MODELS_PER_IMPORT = 200


@transaction.atomic
def deployments_create_from_upstream(*, actor: OrgContext, credential: ProviderCredential, upstream_models, ip=None) -> dict:
    """"Fetch models", then create: a model named like each chosen upstream model, with a deployment
    on this credential. An existing model of that name gets the deployment added (unless it has one
    for this credential and upstream model already). Returns the names created, extended and skipped."""
    _require(has_perm(actor.role, Perm.MANAGE_PROVIDERS))
    if credential.organization_id != actor.organization.pk:
        raise ApplicationError(_("Unknown credential."), field="credential", code="not_found", status=404)
    names = list(dict.fromkeys(_check_upstream_model(n) for n in upstream_models or []))
    if not names:
        raise ApplicationError(_("Choose at least one model."), field="models")
    if len(names) > MAX_MODELS_PER_IMPORT:
        raise ApplicationError(_("Choose at most %(count)d models at once.") % {"count": MAX_MODELS_PER_IMPORT}, field="models")
    too_long = [n for n in names if len(n) > 120]
    if too_long:
        raise ApplicationError(_("A model name may have at most 120 characters: %(name)s") % {"name": too_long[0]}, field="models")
    result = {"created": [], "extended": [], "skipped": []}
    for name in names:
        model = Model.objects.filter(organization=actor.organization, name=name).first()
        if model is None:
            model = model_create(actor=actor, name=name, ip=ip)
            result["created"].append(name)
        elif model.deployments.filter(credential=credential, upstream_model=name).exists():
            result["skipped"].append(name)
            continue
        else:
            result["extended"].append(name)
        deployment_create(actor=actor, model=model, credential=credential, upstream_model=name, ip=ip)
    return result
