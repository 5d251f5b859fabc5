"""The API's objects as OpenAI shapes them (File, Batch), plus a `tollgate` field on the batch: the estimate,
the cap, the spend so far, what a sandbox batch would have cost (from the ledger), pause state and ETA."""

from django.utils import timezone

from batches.models import Batch, BatchFile
from batches.selectors import batch_would_have_cost


def _ts(moment) -> int | None:
    return int(moment.timestamp()) if moment is not None else None


def _money(value) -> str | None:
    return None if value is None else f"{value.normalize():f}"


def file_object(file: BatchFile) -> dict:
    return {"id": file.public_id, "object": "file", "bytes": file.size, "created_at": _ts(file.created_at), "filename": file.filename,
            "purpose": file.purpose, "status": "processed", "status_details": None, "expires_at": None}


def eta_seconds(batch: Batch) -> int | None:
    """Seconds left at the pace so far; None before any line finished or once the batch is over."""
    done = batch.completed + batch.failed
    if batch.finished or batch.paused or not done or batch.in_progress_at is None or not batch.remaining:
        return None
    elapsed = (timezone.now() - batch.in_progress_at).total_seconds()
    return int(batch.remaining * elapsed / done) + 1


def batch_object(batch: Batch) -> dict:
    errors = {"object": "list", "data": batch.errors} if batch.errors else None
    return {
        "id": batch.public_id, "object": "batch", "endpoint": batch.endpoint, "errors": errors,
        "input_file_id": batch.input_file.public_id, "completion_window": batch.completion_window, "status": batch.status,
        "output_file_id": batch.output_file.public_id if batch.output_file_id else None,
        "error_file_id": batch.error_file.public_id if batch.error_file_id else None,
        "created_at": _ts(batch.created_at), "in_progress_at": _ts(batch.in_progress_at), "expires_at": _ts(batch.expires_at),
        "finalizing_at": _ts(batch.finalizing_at), "completed_at": _ts(batch.completed_at), "failed_at": _ts(batch.failed_at),
        "expired_at": _ts(batch.expired_at), "cancelling_at": _ts(batch.cancelling_at), "cancelled_at": _ts(batch.cancelled_at),
        "request_counts": {"total": batch.total, "completed": batch.completed, "failed": batch.failed},
        "metadata": batch.metadata or None,
        "tollgate": {
            "currency": batch.currency, "estimate": _money(batch.estimate), "estimate_complete": bool(batch.estimate_detail.get("complete")),
            "estimate_models": batch.estimate_detail.get("models", []),
            "cap": _money(batch.cap), "cap_source": batch.cap_source or None, "spent": _money(batch.spent + batch.held),
            "would_have_cost": _money(batch_would_have_cost(batch=batch)),
            "paused": batch.paused, "mode": batch.mode, "native_provider": (batch.native or {}).get("provider"), "remaining": batch.remaining,
            "eta_seconds": eta_seconds(batch),
        },
    }
