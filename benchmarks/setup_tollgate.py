"""Configure Tollgate for the benchmark through its own services; prints one JSON line.

    DJANGO_SETTINGS_MODULE=config.settings python benchmarks/setup_tollgate.py \
        --mock http://127.0.0.1:18081 --spaced http://127.0.0.1:18083

Idempotent: the organization, credentials, models and deployments are reused (base URLs updated
when the ports changed); a fresh virtual key is made on every run, so its usage rows are this
run's alone. A budget is put in force when the billing services exist (billing.services.budget_create).
"""

import argparse
import inspect
import json
import os
import sys
import time
from decimal import Decimal

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django  # noqa: E402

django.setup()

from accounts import services as account_services  # noqa: E402
from accounts.models import Membership, Role, User  # noqa: E402
from accounts.tenancy import OrgContext  # noqa: E402
from keys import services as key_services  # noqa: E402
from keys.models import Deployment, Model, ProviderCredential  # noqa: E402

ORG_NAME = "Tollgate Bench"
EMAIL = "bench@tollgate.invalid"
RPM_LIMIT = 10_000_000
TPM_LIMIT = 2_000_000_000


def _owner_and_org():
    user = User.objects.filter(email=EMAIL).first() or User.objects.create_user(EMAIL, None, name="Benchmark")
    membership = Membership.objects.filter(user=user, organization__name=ORG_NAME).select_related("organization").first()
    org = membership.organization if membership else account_services.organization_create(name=ORG_NAME, owner=user)
    return user, org


def _credential(ctx, name: str, base_url: str, provider: str = "custom"):
    credential = ProviderCredential.objects.filter(organization=ctx.organization, name=name).first()
    if credential is None:
        return key_services.credential_create(actor=ctx, name=name, provider=provider, base_url=base_url, api_key="bench")
    if credential.base_url != base_url.rstrip("/"):
        credential = key_services.credential_update(actor=ctx, credential=credential, base_url=base_url)
    return credential


def _model(ctx, name: str, credential, upstream_model: str):
    model = Model.objects.filter(organization=ctx.organization, name=name).first()
    if model is None:
        model = key_services.model_create(actor=ctx, name=name)
    if not Deployment.objects.filter(model=model, credential=credential).exists():
        for old in Deployment.objects.filter(model=model):
            key_services.deployment_delete(actor=ctx, deployment=old)
        key_services.deployment_create(actor=ctx, model=model, credential=credential, upstream_model=upstream_model)
    return model


def _call_with_supported(function, **candidates):
    """Call a service with the keyword arguments it accepts (the billing API is still moving)."""
    parameters = inspect.signature(function).parameters
    if any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        return function(**candidates)
    return function(**{k: v for k, v in candidates.items() if k in parameters})


def _billing(ctx, key) -> dict:
    """A price for the mock's models and a (generous, hard) budget on the key, if billing has services."""
    notes = {}
    try:
        from billing import services as billing_services
    except ImportError as exc:
        return {"budget": f"absent (billing.services not importable: {exc.__class__.__name__})", "price": "absent"}
    price_create = getattr(billing_services, "price_create", None)
    if price_create is None:
        notes["price"] = "absent (no billing.services.price_create)"
    else:
        made = []
        for provider in ("custom", "anthropic"):  # the key's budget is hard: an unpriced model would be refused
            try:
                _call_with_supported(
                    price_create, actor=ctx, organization=ctx.organization, provider=provider, upstream_model="bench-upstream",
                    currency="USD", input_per_m=Decimal("0.15"), output_per_m=Decimal("0.60"), cached_input_per_m=Decimal("0.075"),
                )
                made.append(f"{provider}: created")
            except Exception as exc:  # an existing price or a changed signature: the run goes on
                made.append(f"{provider}: not created ({exc.__class__.__name__}: {str(exc)[:120]})")
        notes["price"] = "; ".join(made)
    budget_create = getattr(billing_services, "budget_create", None)
    if budget_create is None:
        notes["budget"] = "absent (no billing.services.budget_create)"
        return notes
    try:
        budget = _call_with_supported(
            budget_create, actor=ctx, organization=ctx.organization, name=f"bench {key.pk}", scope="key", key=key,
            period="month", amount=Decimal("1000000"), hard=True, thresholds=[],
        )
        notes["budget"] = f"created (id {getattr(budget, 'pk', '?')}, hard, 1,000,000 per month on the key)"
    except Exception as exc:
        notes["budget"] = f"failed ({exc.__class__.__name__}: {str(exc)[:160]})"
    return notes


def _drain_task() -> dict:
    """Is there a Celery task that moves the usage stream into the ledger, and is it scheduled?"""
    try:
        from config.celery import app

        app.loader.import_default_modules()
        names = sorted(n for n in app.tasks if not n.startswith("celery.") and any(w in n for w in ("usage", "drain", "ledger")))
        scheduled = sorted({entry.get("task") for entry in (app.conf.beat_schedule or {}).values()} & set(names))
        return {"drain_tasks": names, "drain_scheduled": scheduled}
    except Exception as exc:
        return {"drain_tasks": [], "drain_scheduled": [], "drain_error": f"{exc.__class__.__name__}: {exc}"}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mock", required=True, help="canned upstream (nginx), e.g. http://127.0.0.1:18081")
    parser.add_argument("--spaced", required=True, help="spaced-stream upstream, e.g. http://127.0.0.1:18083")
    args = parser.parse_args()

    user, org = _owner_and_org()
    ctx = OrgContext(organization=org, role=Role.OWNER, user=user)
    mock = _credential(ctx, "bench-mock", args.mock.rstrip("/") + "/v1")
    mock_stream = _credential(ctx, "bench-mock-stream", args.mock.rstrip("/") + "/stream/v1")
    spaced = _credential(ctx, "bench-spaced", args.spaced.rstrip("/") + "/v1")
    # Anthropic's wire format: the relay appends /v1/messages to the base URL, as to api.anthropic.com.
    mock_anthropic = _credential(ctx, "bench-mock-anthropic", args.mock.rstrip("/"), provider="anthropic")
    _model(ctx, "bench", mock, "bench-upstream")
    _model(ctx, "bench-stream", mock_stream, "bench-upstream")
    _model(ctx, "bench-spaced", spaced, "bench-upstream")
    _model(ctx, "bench-messages", mock_anthropic, "bench-upstream")
    key, secret = key_services.virtual_key_create(
        actor=ctx, name=f"bench {time.strftime('%Y-%m-%d %H:%M:%S')}", user=user, rpm_limit=RPM_LIMIT, tpm_limit=TPM_LIMIT,
    )
    result = {
        "key": secret, "key_id": key.pk, "organization_id": org.pk, "rpm_limit": RPM_LIMIT, "tpm_limit": TPM_LIMIT,
        **_billing(ctx, key), **_drain_task(),
    }
    print("SETUP " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
