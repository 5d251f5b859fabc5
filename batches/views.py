"""The batch pages: upload and estimate, start, then a live progress page (static/js/batches.js polls
its JSON) with pause, resume, cancel and the output and error files.

Batches are seen through their key: a member sees the batches of their own keys, a key manager every
batch of the organization; another organization's batch is a 404.
"""

from django.contrib import messages
from django.http import HttpResponse, JsonResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import content_disposition_header
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts.decorators import permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.permissions import Perm
from batches import lines as batch_lines, native, services
from batches.forms import BatchStartForm, BatchUploadForm
from batches.models import Batch, BatchFile
from batches.selectors import batches_with_files
from batches.shapes import batch_object
from config.body_limit import accepts_body
from keys.selectors import virtual_key_visible_list

CHAT = "/v1/chat/completions"


def _keys(request):
    return virtual_key_visible_list(actor=request.org_context).filter(revoked_at=None).order_by("name")


def _visible_batches(request):
    return Batch.objects.filter(organization=request.org_context.organization, key__in=virtual_key_visible_list(actor=request.org_context))


@accepts_body(batch_lines.MAX_FILE_BYTES + 64 * 1024)
@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_OWN_KEYS)
def batch_list(request):
    org = request.org_context.organization
    form = BatchUploadForm(request.POST or None, request.FILES or None, keys=_keys(request), organization=org)
    estimate = start = None
    if request.method == "POST" and form.is_valid():
        try:
            estimate, start = _estimate(form)
        except ApplicationError as exc:
            service_error(form, exc)
        except batch_lines.InputErrors as problem:
            for error in problem.errors:
                prefix = _("Line %(n)d: ") % {"n": error["line"]} if error["line"] else ""
                form.add_error("file", prefix + error["message"])
    context = {"nav_section": "batches", "form": form, "estimate": estimate, "start": start, "currency": org.currency,
               "batches": _visible_batches(request).select_related("key")[:50]}
    return render(request, "batches/batches.html", context, status=form_status(form) if form.errors else 200)


def _estimate(form):
    data, key = form.cleaned_data, form.cleaned_data["key"]
    content = data["file"].read(batch_lines.MAX_FILE_BYTES + 1)
    if len(content) > batch_lines.MAX_FILE_BYTES:
        raise ApplicationError(_("The file is larger than %(mb)d MB.") % {"mb": batch_lines.MAX_FILE_BYTES // 2**20}, field="file")
    if data["kind"] == "documents":
        content = batch_lines.documents_to_jsonl(text=content.decode("utf-8", "replace"), template=data["template"] or "",
                                                 model=data["model"], max_tokens=data["max_tokens"], csv_column=data["csv_column"].strip())
        endpoint = CHAT
    else:
        first = next((line for line in content.splitlines() if line.strip()), b"")
        endpoint = _first_url(first)
    parsed = batch_lines.parse_jsonl(content, endpoint=endpoint)
    detail = services.file_estimate(organization=key.organization, endpoint=endpoint, parsed=parsed)
    cap = data["cap"] if data["cap"] is not None else services.key_budget_remaining(key=key)
    if data["mode"] == Batch.Mode.NATIVE:
        try:  # refused here with the reason, before the file is kept
            _plan, detail["native_worst"] = native.batch_native_plan(key=key, endpoint=endpoint, parsed=parsed, cap=cap)
        except ApplicationError as exc:
            raise ApplicationError(exc.message, field="mode") from exc
    uploaded = services.file_create(key=key, filename=getattr(data["file"], "name", "input.jsonl"), content=content)
    detail.update(requests=len(parsed), endpoint=endpoint, cap=cap, cap_from_budget=data["cap"] is None and cap is not None, key=key)
    start = BatchStartForm(initial={"key": key.pk, "file_id": uploaded.public_id, "endpoint": endpoint, "cap": data["cap"],
                                    "mode": data["mode"]})
    return detail, start


def _first_url(line: bytes) -> str:
    import orjson

    try:
        url = orjson.loads(line).get("url")
    except (orjson.JSONDecodeError, AttributeError):
        return CHAT  # parse_jsonl reports the line
    return url if url in batch_lines.BATCH_ENDPOINTS else CHAT


@require_POST
@permission_required(Perm.MANAGE_OWN_KEYS)
def batch_start(request):
    form = BatchStartForm(request.POST)
    if not form.is_valid():
        messages.error(request, _("The batch could not be started; upload the file again."))
        return redirect("batches")
    key = get_object_or_404(_keys(request), pk=form.cleaned_data["key"])
    try:
        batch = services.batch_create(key=key, input_file_id=form.cleaned_data["file_id"], endpoint=form.cleaned_data["endpoint"],
                                      cap=form.cleaned_data["cap"], user=request.user, mode=form.cleaned_data["mode"] or None)
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("batches")
    return redirect("batch_detail", public_id=batch.public_id)


@require_GET
@permission_required(Perm.MANAGE_OWN_KEYS)
def batch_detail(request, public_id: str):
    batch = get_object_or_404(batches_with_files(_visible_batches(request)).select_related("key"), public_id=public_id)
    return render(request, "batches/batch_detail.html", {"nav_section": "batches", "batch": batch, "api": batch_object(batch)})


@require_GET
@permission_required(Perm.MANAGE_OWN_KEYS)
def batch_progress(request, public_id: str):
    batch = get_object_or_404(batches_with_files(_visible_batches(request)), public_id=public_id)
    return JsonResponse(batch_object(batch))


@require_POST
@permission_required(Perm.MANAGE_OWN_KEYS)
def batch_control(request, public_id: str, action: str):
    batch = get_object_or_404(_visible_batches(request), public_id=public_id)
    act = {"pause": services.batch_pause, "resume": services.batch_resume, "cancel": services.batch_cancel}.get(action)
    if act is None:
        return HttpResponse(status=404)
    try:
        act(batch=batch)
    except ApplicationError as exc:
        messages.error(request, exc.message)
    return redirect("batch_detail", public_id=public_id)


@require_GET
@permission_required(Perm.MANAGE_OWN_KEYS)
def batch_file(request, public_id: str, file_id: str):
    batch = get_object_or_404(batches_with_files(_visible_batches(request)), public_id=public_id)
    if file_id not in (batch.input_file.public_id, getattr(batch.output_file, "public_id", None), getattr(batch.error_file, "public_id", None)):
        return HttpResponse(status=404)
    found = get_object_or_404(BatchFile, public_id=file_id, organization=batch.organization, deleted_at=None)
    response = HttpResponse(bytes(found.content), content_type="application/jsonl")
    response["Content-Disposition"] = content_disposition_header(True, found.filename)  # quotes and escapes an uploaded name
    return response
