"""The relay's one door into the control plane: what it reads and what it hands back.

The rest of relay/ imports only wire/ and relay/ (.importlinter holds this); relay/snapshots.py, the
relay's read model, is the other module that reads the control plane (its models, in a few queries per
snapshot). Each import here is a question the relay asks or a job it hands off, never a write of its own.
Imports of modules that load Celery tasks or the ledger are deferred to the call: the relay process needs
them only on a rare path (a lost counter, a crossed threshold, a rejected credential, the embedded ledger).
"""

from accounts.crypto import keyed_hash  # a presented key's hash, as keys stores it
from keys.invalidation import local_version_path  # where the embedded default signals configuration changes

__all__ = ["keyed_hash", "local_version_path", "budget_spent_micros", "credit_spent_micros", "enqueue_budget_evaluation",
           "enqueue_credential_rejected", "ledger_ingest", "response_save", "response_get", "response_delete"]


def budget_spent_micros(*, budget_id: int, at: float) -> int:
    """The ledger's spend of a budget in the period holding `at` (to rebuild a lost shared counter)."""
    from billing.selectors import budget_spent_micros as spent

    return spent(budget_id=budget_id, at=at)


def credit_spent_micros(*, account_id: int) -> int:
    """The credit ledger's spend of an account, drawn or not yet drawn (to rebuild a lost shared counter)."""
    from billing.credit_selectors import credit_spent_micros as spent

    return spent(account_id=account_id)


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
