"""Writes for batch runs: files, batches (estimate and cap fixed at creation), pause, resume, cancel, and
the output and error files a finished batch leaves (OpenAI's shapes).

Money is Decimal in the organization's currency throughout; the runner (batches.runner) holds each line
against the cap in micro-units, as the relay holds requests against budgets.
"""

import math
import time
from datetime import timedelta
from decimal import Decimal, InvalidOperation

import orjson
from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from batches import lines as batch_lines, native
from batches.models import Batch, BatchFile, BatchLine
from batches.selectors import budget_left
from billing.estimator import estimate_cost
from keys.models import VirtualKey
from relay.snapshots import budgets_in_force
from wire import tokens

CAP_FIELD = "tollgate_cap"
# A line in flight when its worker died: the upstream may have answered (and charged), so it is never resent.
INTERRUPTED = {"code": "batch_line_interrupted",
               "message": "The worker stopped while this request was in flight; it was not sent again, so it cannot be charged twice."}
CAP_REACHED = {"code": "batch_cap_reached",
               "message": "Not sent: the batch's cost cap could not afford this request's worst case."}
EXPIRED = {"code": "batch_expired", "message": "Not answered within the batch's completion window; it was not sent."}
COMPLETION_WINDOWS = {"24h": timedelta(hours=24)}
FINISHED = (Batch.Status.COMPLETED, Batch.Status.FAILED, Batch.Status.CANCELLED, Batch.Status.EXPIRED)


def file_create(*, key: VirtualKey, filename: str, content: bytes, purpose: str = BatchFile.Purpose.BATCH) -> BatchFile:
    if purpose != BatchFile.Purpose.BATCH:
        raise ApplicationError(_("Only purpose=batch files can be uploaded here."), field="purpose")
    if len(content) > batch_lines.MAX_FILE_BYTES:
        raise ApplicationError(_("The file is larger than %(mb)d MB.") % {"mb": batch_lines.MAX_FILE_BYTES // 2**20}, field="file",
                               code="file_too_large", status=413)
    return BatchFile.objects.create(organization_id=key.organization_id, key=key, purpose=purpose, filename=(filename or "input.jsonl")[:255],
                                    content=content, size=len(content))


def file_delete(*, file: BatchFile) -> BatchFile:
    """Delete a file's content (OpenAI's DELETE /v1/files/{id}); refused while a batch still reads it. The row
    stays, empty, so that finished batches keep naming their files."""
    with transaction.atomic():
        file = BatchFile.objects.select_for_update().defer("content").get(pk=file.pk)
        if file.deleted_at is not None:
            raise ApplicationError(_("No such file: %(id)s.") % {"id": file.public_id}, code="not_found", status=404)
        running = Batch.objects.filter(input_file=file).exclude(status__in=FINISHED).first()
        if running is not None:
            raise ApplicationError(_("The file is the input of batch %(batch)s, which has not finished: cancel it or wait for it to end.")
                                   % {"batch": running.public_id}, code="file_in_use", status=409)
        file.deleted_at, file.content, file.size = timezone.now(), b"", 0
        file.save(update_fields=["deleted_at", "content", "size"])
    return file


def file_estimate(*, organization, endpoint: str, parsed: list[batch_lines.Line]) -> dict:
    """The whole file's cost by the estimator's method (billing.estimator.estimate_cost): per model, its
    requests at their average prompt (counted with the tokenizer) and output (max_tokens, or the relay's
    output reserve when a line sets none), priced on the deployment traffic goes to first."""
    kind = batch_lines.BATCH_ENDPOINTS[endpoint]
    groups: dict[str, list[int]] = {}
    for line in parsed:
        group = groups.setdefault(line.body["model"], [0, 0, 0])
        group[0] += 1
        group[1] += tokens.estimate_prompt(kind, line.body)
        group[2] += 0 if kind == "embeddings" else int(line.body.get("max_completion_tokens") or line.body.get("max_tokens")
                                                       or settings.TOLLGATE_OUTPUT_RESERVE_TOKENS)
    models, total, complete = [], Decimal(0), True
    for name, (count, input_tokens, output_tokens) in groups.items():
        row = {"model": name, "requests": count, "input_tokens": input_tokens, "output_tokens": output_tokens, "cost": None, "missing": ""}
        try:
            estimate = estimate_cost(organization=organization, documents=count, average_document_tokens=max(1, math.ceil(input_tokens / count)),
                                     expected_output_tokens=math.ceil(output_tokens / count), models=[name])
            found = estimate.models[0]
            row["missing"] = found.missing if found.unpriced or found.main.cost_display is None else ""
            if not row["missing"]:
                row["cost"] = str(found.main.cost_display)
                total += found.main.cost_display
        except ApplicationError:
            row["missing"] = "model"
        complete = complete and not row["missing"]
        models.append(row)
    return {"total": str(total), "complete": complete, "models": models, "currency": organization.currency}


def key_budget_remaining(*, key: VirtualKey) -> Decimal | None:
    """What the key's tightest budget in force (its own, its team's, its user's, the organization's) leaves
    this period; None when no budget holds it."""
    now = time.time()
    remaining = None
    for budget in budgets_in_force(key):
        left = budget_left(budget, now)
        remaining = left if remaining is None else min(remaining, left)
    return remaining


def _cap(value) -> Decimal:
    try:
        cap = Decimal(str(value))
    except (InvalidOperation, ValueError):
        cap = None
    if cap is None or not cap.is_finite() or cap <= 0 or cap > Decimal("1e9"):
        raise ApplicationError(_("tollgate_cap must be a positive amount, such as \"5.00\"."), field=CAP_FIELD)
    return cap


def batch_create(*, key: VirtualKey, input_file_id: str, endpoint: str, completion_window: str = "24h", metadata=None,
                 cap=None, user=None, mode=None) -> Batch:
    """A batch over an uploaded file. A file that fails validation gives a `failed` batch listing its errors
    (as OpenAI does); a valid one is estimated, capped (the `tollgate_cap` given, else the key's remaining
    budget) and queued for the workers."""
    if endpoint not in batch_lines.BATCH_ENDPOINTS:
        raise ApplicationError(_("endpoint must be one of %(list)s.") % {"list": ", ".join(sorted(batch_lines.BATCH_ENDPOINTS))}, field="endpoint")
    if completion_window not in COMPLETION_WINDOWS:
        raise ApplicationError(_("completion_window must be 24h."), field="completion_window")
    metadata = metadata or {}
    if not isinstance(metadata, dict) or len(metadata) > 16 or any(not isinstance(v, str) or len(v) > 512 for v in metadata.values()):
        raise ApplicationError(_("metadata holds at most 16 text values."), field="metadata")
    mode = native.mode_requested(metadata=metadata, mode=mode)
    source = BatchFile.objects.filter(organization_id=key.organization_id, public_id=input_file_id, purpose=BatchFile.Purpose.BATCH,
                                      deleted_at=None).first()
    if source is None:
        raise ApplicationError(_("No such file: %(id)s.") % {"id": input_file_id}, field="input_file_id", code="not_found", status=404)
    given = cap if cap is not None else metadata.get(CAP_FIELD)
    cap_value, cap_source = (_cap(given), "given") if given is not None else (key_budget_remaining(key=key), "key_budget")
    if cap_value is None:
        cap_source = ""
    now = timezone.now()
    batch = Batch(organization_id=key.organization_id, key=key, created_by=user, endpoint=endpoint, completion_window=completion_window,
                  input_file=source, metadata=metadata, currency=key.organization.currency, cap=cap_value, cap_source=cap_source,
                  expires_at=now + COMPLETION_WINDOWS[completion_window])
    try:
        parsed = batch_lines.parse_jsonl(bytes(source.content), endpoint=endpoint)
    except batch_lines.InputErrors as problem:
        batch.status, batch.errors, batch.failed_at = Batch.Status.FAILED, problem.errors, now
        batch.save()
        return batch
    detail = file_estimate(organization=key.organization, endpoint=endpoint, parsed=parsed)
    batch.estimate, batch.estimate_detail = Decimal(detail["total"]), detail
    unpriced = [row["model"] for row in detail["models"] if row["missing"]]
    if unpriced and cap_value is not None:
        # An unpriced model's cost cannot be held against a cap (as the relay refuses it under a hard budget).
        batch.status, batch.failed_at = Batch.Status.FAILED, now
        batch.errors = [{"code": "cap_unenforceable", "param": "model", "line": None, "message": _(
            "The cost cap cannot be enforced: no price or deployment for %(models)s.") % {"models": ", ".join(unpriced)}}]
        batch.save()
        return batch
    if mode == Batch.Mode.NATIVE:
        # The provider's own batch API at its batch price; refused (400, with why) if not possible or if the
        # whole file's worst case does not fit the cap, which then holds it until the results are settled.
        batch.native, batch.held = native.batch_native_plan(key=key, endpoint=endpoint, parsed=parsed, cap=cap_value)
        batch.mode = mode
    batch.status, batch.in_progress_at, batch.total = Batch.Status.IN_PROGRESS, now, len(parsed)
    with transaction.atomic():
        batch.save()
        BatchLine.objects.bulk_create(
            [BatchLine(batch=batch, number=line.number, custom_id=line.custom_id, url=line.url, body=line.body) for line in parsed],
            batch_size=2000,
        )
        transaction.on_commit(lambda: _enqueue(batch.pk))
    return batch


def _enqueue(batch_pk: int) -> None:
    from batches.tasks import batch_run  # tasks import this module

    batch_run.delay(batch_pk)


def batch_cancel(*, batch: Batch) -> Batch:
    """Stop dispatching; lines already sent finish, the rest go to the error file (`batch_cancelled`)."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch.pk)
        if batch.status in (Batch.Status.IN_PROGRESS, Batch.Status.VALIDATING):
            batch.status, batch.cancelling_at, batch.paused = Batch.Status.CANCELLING, timezone.now(), False
            batch.save(update_fields=["status", "cancelling_at", "paused"])
            transaction.on_commit(lambda: _enqueue(batch.pk))
    return batch


def batch_pause(*, batch: Batch) -> Batch:
    """The runner stops dispatching and lets the lines in flight finish; nothing is lost or sent twice."""
    if batch.mode == Batch.Mode.NATIVE:
        raise ApplicationError(_("A native batch runs at the provider and cannot be paused; cancel it instead."), code="invalid_state", status=409)
    updated = Batch.objects.filter(pk=batch.pk, status=Batch.Status.IN_PROGRESS).update(paused=True)
    batch.refresh_from_db()
    if not updated:
        raise ApplicationError(_("Only a batch in progress can be paused."), code="invalid_state", status=409)
    return batch


def batch_resume(*, batch: Batch) -> Batch:
    updated = Batch.objects.filter(pk=batch.pk, status=Batch.Status.IN_PROGRESS, paused=True).update(paused=False)
    batch.refresh_from_db()
    if not updated:
        raise ApplicationError(_("Only a paused batch can be resumed."), code="invalid_state", status=409)
    transaction.on_commit(lambda: _enqueue(batch.pk))
    return batch


def batches_stalled(*, stale_seconds: float) -> list[int]:
    """Batches that should be running but whose runner has not renewed its lease (a killed worker), and paused
    ones past their window (a run closes them as expired)."""
    now = timezone.now()
    cutoff = now - timedelta(seconds=stale_seconds)
    return list(Batch.objects.filter(status__in=[Batch.Status.IN_PROGRESS, Batch.Status.CANCELLING])
                .filter(Q(heartbeat_at=None) | Q(heartbeat_at__lt=cutoff)).filter(Q(paused=False) | Q(expires_at__lte=now))
                .values_list("pk", flat=True))


# --- the finished batch's files ------------------------------------------------------------------


def output_line(line: BatchLine) -> bytes:
    """OpenAI's batch output line: the answer, or (error file) the error and the answer it came with."""
    response = None
    if line.status_code is not None:
        response = {"status_code": line.status_code, "request_id": line.request_id, "body": line.response}
    return orjson.dumps({"id": f"batch_req_{line.batch_id}_{line.number}", "custom_id": line.custom_id, "response": response,
                         "error": line.error})


def batch_finalize(*, batch_pk: int) -> Batch:
    """Write the output and error files and close the batch: `completed` (lines the cap could not afford
    are in the error file, `batch_cap_reached`), `cancelled`, or `expired` (past its window with lines not
    answered: they are in the error file, `batch_expired`)."""
    with transaction.atomic():
        batch = Batch.objects.select_for_update().get(pk=batch_pk)
        if batch.finished:
            return batch
        now = timezone.now()
        open_lines = BatchLine.objects.filter(batch=batch, state__in=[BatchLine.State.PENDING, BatchLine.State.SENT])
        cancelled = batch.status == Batch.Status.CANCELLING
        expired = not cancelled and batch.expired_by(now) and open_lines.exists()
        if cancelled or expired:
            reason = {"code": "batch_cancelled", "message": _("The batch was cancelled before this request was sent.")} if cancelled else EXPIRED
            BatchLine.objects.filter(batch=batch, state=BatchLine.State.PENDING).update(state=BatchLine.State.FAILED, error=reason)
            BatchLine.objects.filter(batch=batch, state=BatchLine.State.SENT).update(state=BatchLine.State.FAILED, error=INTERRUPTED)
        batch.finalizing_at = batch.finalizing_at or timezone.now()
        output, errors = [], []
        for line in BatchLine.objects.filter(batch=batch).order_by("number").iterator(chunk_size=2000):
            if line.state == BatchLine.State.DONE:
                output.append(output_line(line))
            elif line.state == BatchLine.State.FAILED:
                errors.append(output_line(line))
        stem = batch.public_id
        for attr, rows, suffix in (("output_file", output, "output"), ("error_file", errors, "errors")):
            if rows:
                content = b"\n".join(rows) + b"\n"
                setattr(batch, attr, BatchFile.objects.create(
                    organization_id=batch.organization_id, key_id=batch.key_id, purpose=BatchFile.Purpose.BATCH_OUTPUT,
                    filename=f"{stem}_{suffix}.jsonl", content=content, size=len(content)))
        batch.completed, batch.failed = len(output), len(errors)
        if cancelled:
            batch.status, batch.cancelled_at = Batch.Status.CANCELLED, now
        elif expired:
            batch.status, batch.expired_at = Batch.Status.EXPIRED, now
        else:
            batch.status, batch.completed_at = Batch.Status.COMPLETED, now
        batch.runner, batch.heartbeat_at = "", None
        batch.save()
    return batch
