"""The "test credential" button: one cheap chat call (max_tokens 1) through the relay's adapter for a credential.

It uses the adapter machinery directly rather than the relay pipeline: no key, model, deployment,
admission or usage record is involved, so a credential can be tried before any model uses it.
The answer is reduced to (ok, message, latency); the message never contains the credential's key.
"""

import time
from concurrent.futures import ThreadPoolExecutor

from asgiref.sync import async_to_sync
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.permissions import Perm, has_perm
from accounts.tenancy import OrgContext
from keys import egress, encryption
from keys.models import ProviderCredential
from keys.selectors import credential_extra_headers
from wire.adapters import get_adapter
from wire.adapters.base import Target
from wire.errors import RelayError, redact_secrets, target_secrets
from wire.presets import PRESETS

TEST_TIMEOUT_SECONDS = 10.0
TEST_PROMPT = "Reply with one word."
MAX_ANSWER_BYTES = 64 * 1024  # a one-token answer or an error body; more is not needed to judge it


def _target(credential: ProviderCredential, upstream_model: str) -> Target:
    preset = PRESETS[credential.provider]
    return Target(
        deployment_id=0,
        provider=credential.provider,
        wire=preset.wire,
        base_url=credential.base_url or preset.base_url,
        api_key=encryption.decrypt(credential.api_key_encrypted),
        upstream_model=upstream_model,
        api_version=credential.api_version,
        extra_headers=credential_extra_headers(credential),
        connect_timeout=credential.connect_timeout,
        read_timeout=credential.read_timeout,
        stream_usage=preset.stream_usage,
    )


async def _local_call(adapter, request, endpoint: str) -> tuple[int, bytes, dict]:
    response = await adapter.local_call(request, endpoint)
    return response.status, await response.read(), dict(response.headers)


def _chat_test(upstream_model: str) -> tuple[str, dict]:
    return "chat", {"model": upstream_model, "messages": [{"role": "user", "content": TEST_PROMPT}], "max_tokens": 1}


def _redact(message, target: Target):
    """No key or extra header value of the credential, however the provider quoted it back."""
    return redact_secrets(message, target_secrets(target))


def credential_test(*, actor: OrgContext, credential: ProviderCredential, upstream_model: str) -> tuple[bool, str, int]:
    """Send one minimal chat request with `credential`; returns (ok, message to show, latency in ms)."""
    if not has_perm(actor.role, Perm.MANAGE_PROVIDERS):
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)
    if credential.organization_id != actor.organization.pk:
        raise ApplicationError(_("Unknown credential."), code="not_found", status=404)
    upstream_model = (upstream_model or "").strip()
    if not upstream_model or any(c in upstream_model for c in "\x00\r\n"):
        raise ApplicationError(_("Name the model at the provider."), field="upstream_model")
    return run_test(credential, upstream_model)


def run_test(credential: ProviderCredential, upstream_model: str) -> tuple[bool, str, int]:
    """The call itself, for callers that checked the actor (the test buttons) or need none (the scheduled probe)."""
    preset = PRESETS.get(credential.provider)
    if preset is None:
        return False, _("This credential's provider is not supported any more."), 0
    try:
        target = _target(credential, upstream_model)
    except ValueError:
        return False, _("The stored key cannot be decrypted with the configured encryption keys."), 0
    adapter = get_adapter(preset.wire)
    # The cheapest call the wire format has: a one-token chat, or (rerank-only providers) one document ranked.
    endpoint, body = getattr(adapter, "test_call", _chat_test)(upstream_model)
    request = adapter.build_request(endpoint=endpoint, body=body, target=target, stream=False)

    started = time.perf_counter()

    def elapsed() -> int:
        return round((time.perf_counter() - started) * 1000)

    if adapter.local:
        status, content, headers = async_to_sync(_local_call)(adapter, request, endpoint)
    else:
        # The egress client checks the destination again at connect time and pins the checked address.
        try:
            response = egress.fetch(
                request.method, request.url, content=request.body or b"", headers=request.headers,
                timeout=TEST_TIMEOUT_SECONDS, max_body=MAX_ANSWER_BYTES,
            )
        except egress.EgressRefused as exc:
            return False, exc.message, 0
        except egress.EgressFailed as exc:
            return False, exc.message, elapsed()
        status, content, headers = response.status_code, response.body, response.headers

    latency = elapsed()
    if 200 <= status < 300:
        try:
            adapter.parse_response(endpoint=endpoint, body=content, target=target, model=upstream_model)
        except RelayError as exc:
            return False, _redact(exc.message, target), latency
        return True, _("The provider answered in %(ms)d ms.") % {"ms": latency}, latency
    error = adapter.map_error(status=status, body=_redact(content, target), headers=headers)
    message = _("The provider refused the call (HTTP %(status)d): %(message)s") % {"status": status, "message": error.message}
    return False, _redact(message, target), latency


TEST_ALL_WORKERS = 4
TEST_ALL_MAX_MODELS = 50


def credential_test_all(*, actor: OrgContext, credential: ProviderCredential) -> list[dict]:
    """"Test all": the one-call test for every upstream model the credential's deployments use.

    A few calls run at once (each bounded by TEST_TIMEOUT_SECONDS), so the page answers in about one
    test's time. Rows: upstream_model, ok, message, latency_ms; sorted by model name.
    """
    if not has_perm(actor.role, Perm.MANAGE_PROVIDERS):
        raise ApplicationError(_("Your role does not allow this."), code="permission_denied", status=403)
    names = sorted(set(credential.deployments.values_list("upstream_model", flat=True)))[:TEST_ALL_MAX_MODELS]

    def one(name: str) -> dict:
        ok, message, latency = credential_test(actor=actor, credential=credential, upstream_model=name)
        return {"upstream_model": name, "ok": ok, "message": message, "latency_ms": latency}

    if not names:
        return []
    with ThreadPoolExecutor(max_workers=min(TEST_ALL_WORKERS, len(names))) as pool:
        return list(pool.map(one, names))
