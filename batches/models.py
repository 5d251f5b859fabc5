"""Batch runs: uploaded files, batches and their lines (the OpenAI Files and Batches API, run by Tollgate).

A batch's lines are rows, so a worker killed mid-batch resumes from what the database says: a line is
`sent` (committed) before it is dispatched, and `done` or `failed` once its answer is stored.
"""

import secrets

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization
from keys.models import VirtualKey


def new_file_id() -> str:
    return "file-" + secrets.token_hex(12)


def new_batch_id() -> str:
    return "batch_" + secrets.token_hex(12)


class BatchFile(models.Model):
    class Purpose(models.TextChoices):
        BATCH = "batch", "batch"
        BATCH_OUTPUT = "batch_output", "batch_output"

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="batch_files")
    key = models.ForeignKey(VirtualKey, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    public_id = models.CharField(max_length=40, unique=True, default=new_file_id)
    purpose = models.CharField(max_length=16, choices=Purpose.choices)
    filename = models.CharField(max_length=255)
    content = models.BinaryField()
    size = models.PositiveBigIntegerField(default=0)
    created_at = models.DateTimeField(auto_now_add=True)
    # Deleted (DELETE /v1/files/{id}): the content is gone, the row stays so that a batch still names its files.
    deleted_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return self.public_id


class Batch(models.Model):
    class Status(models.TextChoices):
        VALIDATING = "validating", _("validating")
        FAILED = "failed", _("failed")
        IN_PROGRESS = "in_progress", _("in progress")
        FINALIZING = "finalizing", _("finalizing")
        COMPLETED = "completed", _("completed")
        EXPIRED = "expired", _("expired")
        CANCELLING = "cancelling", _("cancelling")
        CANCELLED = "cancelled", _("cancelled")

    class Mode(models.TextChoices):
        RELAY = "relay", _("through the relay")
        NATIVE = "native", _("the provider's batch API")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="batches")
    key = models.ForeignKey(VirtualKey, null=True, on_delete=models.SET_NULL, related_name="+")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    public_id = models.CharField(max_length=40, unique=True, default=new_batch_id)
    endpoint = models.CharField(max_length=64)
    completion_window = models.CharField(max_length=8, default="24h")
    input_file = models.ForeignKey(BatchFile, on_delete=models.PROTECT, related_name="+")
    output_file = models.ForeignKey(BatchFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    error_file = models.ForeignKey(BatchFile, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.VALIDATING)
    paused = models.BooleanField(default=False)
    # "native": submitted to the provider's own batch API at its batch price (batches.native); `native` holds
    # the plan (provider, credential, deployment per model) and the upstream's ids and state.
    mode = models.CharField(max_length=8, choices=Mode.choices, default=Mode.RELAY)
    native = models.JSONField(default=dict, blank=True)
    errors = models.JSONField(default=list, blank=True)  # validation errors: [{"code", "message", "line", "param"}]
    metadata = models.JSONField(default=dict, blank=True)
    # Money in the organization's currency. cap None: no cap (no cap asked for, and no budget on the key).
    currency = models.CharField(max_length=3)
    cap = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    cap_source = models.CharField(max_length=16, blank=True)  # "metadata", "key_budget" or ""
    estimate = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    estimate_detail = models.JSONField(default=dict, blank=True)
    spent = models.DecimalField(max_digits=20, decimal_places=10, default=0)  # settled line costs
    # Held for lines a killed worker left in flight: their cost is unknown, so their worst case counts.
    held = models.DecimalField(max_digits=20, decimal_places=10, default=0)
    total = models.PositiveIntegerField(default=0)
    completed = models.PositiveIntegerField(default=0)
    failed = models.PositiveIntegerField(default=0)
    # The run's lease: a worker renews it while it runs; a stale one lets the sweep start another.
    runner = models.CharField(max_length=64, blank=True)
    heartbeat_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    in_progress_at = models.DateTimeField(null=True, blank=True)
    finalizing_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    failed_at = models.DateTimeField(null=True, blank=True)
    cancelling_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)  # created_at + completion_window: past it, nothing more is sent
    expired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["organization", "-created_at"], name="batch_org_time")]

    def __str__(self):
        return self.public_id

    @property
    def remaining(self) -> int:
        return max(self.total - self.completed - self.failed, 0)

    def expired_by(self, now) -> bool:
        """Past its completion window (OpenAI's `expired`: what was not answered by then is not sent)."""
        return self.expires_at is not None and self.expires_at <= now

    @property
    def finished(self) -> bool:
        return self.status in (self.Status.COMPLETED, self.Status.FAILED, self.Status.CANCELLED, self.Status.EXPIRED)


class BatchLine(models.Model):
    class State(models.TextChoices):
        PENDING = "pending"
        SENT = "sent"  # committed before dispatch: after a crash, the line is in doubt
        DONE = "done"
        FAILED = "failed"

    batch = models.ForeignKey(Batch, on_delete=models.CASCADE, related_name="lines")
    number = models.PositiveIntegerField()  # 1-based line number in the input file
    custom_id = models.CharField(max_length=200)
    url = models.CharField(max_length=64)
    body = models.JSONField()
    state = models.CharField(max_length=8, choices=State.choices, default=State.PENDING)
    status_code = models.PositiveSmallIntegerField(null=True, blank=True)
    request_id = models.CharField(max_length=64, blank=True)
    response = models.JSONField(null=True, blank=True)  # the answer's body (an error body when it failed)
    error = models.JSONField(null=True, blank=True)  # {"code", "message"} of a line that got no answer
    cost = models.DecimalField(max_digits=20, decimal_places=10, null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["batch", "number"]
        constraints = [models.UniqueConstraint(fields=["batch", "custom_id"], name="batch_line_custom_id_unique")]
        indexes = [models.Index(fields=["batch", "state", "number"], name="batch_line_state")]

    def __str__(self):
        return f"{self.batch_id}:{self.custom_id}"
