"""The relay's one door into the control plane: what it reads and what it hands back.

The rest of relay/ imports only wire/ and relay/ (.importlinter holds this); relay/snapshots.py, the
relay's read model, is the other module that reads the control plane (its models, in a few queries per
snapshot). Each import here is a question the relay asks or a job it hands off, never a write of its own.
Imports of modules that load Celery tasks or the ledger are deferred to the call: the relay process needs
them only on a rare path (a lost counter, a crossed threshold, a rejected credential, the embedded ledger).
"""

from accounts.crypto import keyed_hash  # a presented key's hash, as keys stores it
from keys.invalidation import local_version_path  # where the embedded default signals configuration changes

__all__ = ["keyed_hash", "local_version_path", "budget_counter_repair", "credit_counter_repair", "enqueue_budget_evaluation",
           "enqueue_credential_rejected", "ledger_ingest", "response_save", "response_get", "response_delete"]


def budget_counter_repair(*, budget_id: int, at: float, seen: float) -> float:
    """What a lost budget counter of the period holding `at` is rebuilt at: billing's one repair, which
    the periodic reconciliation makes too (billing.counters)."""
    from billing.counters import budget_counter_repair as repair

    return repair(budget_id=budget_id, at=at, seen=seen)


def credit_counter_repair(*, account_id: int, seen: float) -> float:
    """What a lost credit counter is rebuilt at (billing.counters, as for budgets)."""
    from billing.counters import credit_counter_repair as repair

    return repair(account_id=account_id, seen=seen)


def enqueue_budget_evaluation(budget_id: int, **options) -> None:
    """A budget crossed a threshold: billing evaluates it and alerts (a Celery task)."""
    from billing.tasks import budget_evaluate

    budget_evaluate.apply_async((budget_id,), **options)


def enqueue_credential_rejected(deployment_id: int, status: int | None, **options) -> None:
    """A provider refused a deployment's credential: billing tells the organization (a Celery task)."""
    from billing.tasks_alerts import credential_rejected

    credential_rejected.apply_async((deployment_id, status), **options)


def response_save(**fields) -> None:
    """Keep a Response sent with `store: true` for its organization (run after it was sent)."""
    from response_store.services import response_save as save

    save(**fields)


def response_get(*, organization_id: int, response_id: str):
    """A stored Response of this organization, or None (for previous_response_id and GET /v1/responses/{id})."""
    from response_store.services import response_get as get

    return get(organization_id=organization_id, response_id=response_id)


def response_delete(*, organization_id: int, response_id: str) -> bool:
    from response_store.services import response_delete as delete

    return delete(organization_id=organization_id, response_id=response_id)


def ledger_ingest(records: list) -> int:
    """The embedded default's usage sink writes the ledger directly (there is no Redis stream)."""
    from billing.ledger import usage_ingest

    return usage_ingest(records)
