"""Fetch models: what a credential offers at its provider, read from the provider's model list.

OpenAI-format providers answer `GET {base}/models` (`data[].id`), Anthropic `GET {base}/v1/models`
(pages through `has_more`/`last_id`), Gemini `GET {base}/models` (`models[].name`, pages through
`nextPageToken`; only models that generate or embed content are kept). Requests carry the same
authentication headers as the relay's calls (taken from the adapter's request) and go through the
egress client. Failures raise ApplicationError with a message that never contains the key.
"""

import json
from urllib.parse import urlencode

from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from keys import egress
from keys.models import ProviderCredential
from keys.testing import _redact, _target
from wire.adapters import get_adapter
from wire.presets import PRESETS

LIST_TIMEOUT_SECONDS = 15.0
MAX_LIST_BYTES = 4 * 1024 * 1024  # OpenRouter-sized lists fit; a bigger answer is refused, not truncated
MAX_PAGES = 20
MOCK_MODELS = ["demo"]  # the demo provider answers any name; this one is the conventional one
GEMINI_METHODS = {"generateContent", "embedContent"}


class DiscoveryFailed(ApplicationError):
    def __init__(self, message: str):
        super().__init__(message, code="provider_error", status=502)


def _headers(credential: ProviderCredential, target) -> dict:
    """The adapter's authentication and extra headers, without those of a request body."""
    adapter = get_adapter(PRESETS[credential.provider].wire)
    request = adapter.build_request(endpoint="chat", body={"model": target.upstream_model, "messages": []}, target=target, stream=False)
    return {k: v for k, v in request.headers.items() if k.lower() not in ("content-type", "content-length")}


def _get_json(url: str, headers: dict, target, wire: str):
    try:
        response = egress.fetch("GET", url, headers=headers, timeout=LIST_TIMEOUT_SECONDS, max_body=MAX_LIST_BYTES)
    except (egress.EgressRefused, egress.EgressFailed) as exc:
        raise DiscoveryFailed(_redact(exc.message, target)) from exc
    if not 200 <= response.status_code < 300:
        error = get_adapter(wire).map_error(status=response.status_code, body=_redact(response.body, target), headers=response.headers)
        message = _("The provider refused to list its models (HTTP %(status)d): %(message)s") % {
            "status": response.status_code, "message": error.message,
        }
        raise DiscoveryFailed(_redact(message, target))
    if len(response.body) >= MAX_LIST_BYTES:
        raise DiscoveryFailed(_("The provider's model list is larger than %(mb)d MB.") % {"mb": MAX_LIST_BYTES // (1024 * 1024)})
    try:
        return json.loads(response.body)
    except ValueError as exc:
        raise DiscoveryFailed(_("The provider's answer is not a JSON model list.")) from exc


def _malformed() -> DiscoveryFailed:
    return DiscoveryFailed(_("The provider's answer is not a JSON model list."))


def _openai_models(base: str, headers: dict, target) -> list[str]:
    data = _get_json(f"{base}/models", headers, target, "openai")
    items = data.get("data") if isinstance(data, dict) else None
    if not isinstance(items, list):
        raise _malformed()
    return [str(item["id"]) for item in items if isinstance(item, dict) and item.get("id")]


def _anthropic_models(base: str, headers: dict, target) -> list[str]:
    names, after = [], None
    for _page in range(MAX_PAGES):
        query = {"limit": 1000, **({"after_id": after} if after else {})}
        data = _get_json(f"{base}/v1/models?{urlencode(query)}", headers, target, "anthropic")
        items = data.get("data") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _malformed()
        names += [str(item["id"]) for item in items if isinstance(item, dict) and item.get("id")]
        after = data.get("last_id")
        if not data.get("has_more") or not after:
            break
    return names


def _gemini_models(base: str, headers: dict, target) -> list[str]:
    names, token = [], None
    for _page in range(MAX_PAGES):
        query = {"pageSize": 1000, **({"pageToken": token} if token else {})}
        data = _get_json(f"{base}/models?{urlencode(query)}", headers, target, "gemini")
        items = data.get("models") if isinstance(data, dict) else None
        if not isinstance(items, list):
            raise _malformed()
        for item in items:
            if not isinstance(item, dict) or not item.get("name"):
                continue
            methods = item.get("supportedGenerationMethods")
            if isinstance(methods, list) and not GEMINI_METHODS.intersection(methods):
                continue
            names.append(str(item["name"]).removeprefix("models/"))
        token = data.get("nextPageToken")
        if not token:
            break
    return names


LISTERS = {"openai": _openai_models, "anthropic": _anthropic_models, "gemini": _gemini_models}


def credential_models(*, credential: ProviderCredential) -> list[str]:
    """The model names the credential's provider lists, sorted and without duplicates."""
    preset = PRESETS.get(credential.provider)
    if preset is None:
        raise DiscoveryFailed(_("This credential's provider is not supported any more."))
    if preset.wire == "mock":
        return list(MOCK_MODELS)
    lister = LISTERS.get(preset.wire)
    if lister is None:
        raise DiscoveryFailed(_("This provider has no model list to fetch (Azure lists deployments); add models by name."))
    try:
        target = _target(credential, "model")
    except ValueError as exc:
        raise DiscoveryFailed(_("The stored key cannot be decrypted with the configured encryption keys.")) from exc
    base = target.base_url.rstrip("/")
    names = lister(base, _headers(credential, target), target)
    return sorted({n for n in names if n and len(n) <= 200 and not any(c in n for c in "\x00\r\n")})
