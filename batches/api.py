"""OpenAI's Files and Batches API on /v1/files and /v1/batches (config/asgi.py sends these to Django: they
are not the hot path). Authenticated by a virtual key; everything is scoped to the key's organization, and
another organization's ids answer 404 as if they did not exist. Errors are OpenAI's JSON envelope."""

import orjson
from django.db.models import Q
from django.http import HttpResponse, JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt

from accounts.errors import ApplicationError
from batches import lines as batch_lines, services
from batches.auth import request_key
from batches.models import Batch, BatchFile
from batches.selectors import batches_with_files, files_listed
from batches.shapes import batch_object, file_object
from config.body_limit import accepts_body

MAX_LIST = 100


def _error(status: int, message: str, *, code: str, param: str | None = None, kind: str = "invalid_request_error") -> JsonResponse:
    return JsonResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status=status)


def _not_found(what: str, public_id: str) -> JsonResponse:
    return _error(404, _("No such %(what)s: %(id)s") % {"what": what, "id": public_id}, code="not_found")


def _v1(methods: tuple[str, ...]):
    """Key authentication, method check and ApplicationError → OpenAI envelope, for every view here."""

    def decorate(view):
        @csrf_exempt
        def wrapped(request, *args, **kwargs):
            if request.method not in methods:
                return _error(405, _("Use %(methods)s for this endpoint.") % {"methods": " or ".join(methods)}, code="method_not_allowed")
            key = request_key(request)
            if key is None:
                return _error(401, _("Incorrect, expired or revoked API key."), code="invalid_api_key")
            try:
                return view(request, key, *args, **kwargs)
            except ApplicationError as error:
                return _error(error.status, error.message, code=error.code, param=error.field)

        wrapped.__name__ = view.__name__
        return wrapped

    return decorate


def _page(request, queryset, shape) -> JsonResponse:
    try:
        limit = min(max(int(request.GET.get("limit", 20)), 1), MAX_LIST)
    except ValueError:
        return _error(400, _("limit must be a whole number."), code="invalid_request_error", param="limit")
    order = request.GET.get("order", "desc")
    if order not in ("asc", "desc"):
        return _error(400, _("order must be asc or desc."), code="invalid_request_error", param="order")
    after = request.GET.get("after")
    if after:
        anchor = queryset.filter(public_id=after).first()
        if anchor is None:
            return _not_found("object", after)
        if order == "desc":
            queryset = queryset.filter(Q(created_at__lt=anchor.created_at) | Q(created_at=anchor.created_at, pk__lt=anchor.pk))
        else:
            queryset = queryset.filter(Q(created_at__gt=anchor.created_at) | Q(created_at=anchor.created_at, pk__gt=anchor.pk))
    ordering = ("-created_at", "-pk") if order == "desc" else ("created_at", "pk")
    rows = list(queryset.order_by(*ordering)[: limit + 1])
    data = [shape(row) for row in rows[:limit]]
    return JsonResponse({"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                         "last_id": data[-1]["id"] if data else None, "has_more": len(rows) > limit})


@accepts_body(batch_lines.MAX_FILE_BYTES + 64 * 1024)
@_v1(("GET", "POST"))
def files(request, key):
    if request.method == "GET":
        queryset = files_listed(BatchFile.objects.filter(organization_id=key.organization_id))
        if request.GET.get("purpose"):
            queryset = queryset.filter(purpose=request.GET["purpose"])
        return _page(request, queryset, file_object)
    upload = request.FILES.get("file")
    if upload is None:
        return _error(400, _("Send the file as multipart/form-data in the field 'file'."), code="invalid_request_error", param="file")
    if upload.size > batch_lines.MAX_FILE_BYTES:
        return _error(413, _("The file is larger than %(mb)d MB.") % {"mb": batch_lines.MAX_FILE_BYTES // 2**20}, code="file_too_large", param="file")
    purpose = request.POST.get("purpose", "")
    if purpose != BatchFile.Purpose.BATCH:
        return _error(400, _("purpose must be 'batch'."), code="invalid_request_error", param="purpose")
    created = services.file_create(key=key, filename=upload.name, content=upload.read(), purpose=purpose)
    return JsonResponse(file_object(created))


def _file(key, file_id: str) -> BatchFile | None:
    return BatchFile.objects.filter(organization_id=key.organization_id, public_id=file_id, deleted_at=None).first()


def _file_listed(key, file_id: str) -> BatchFile | None:
    return files_listed(BatchFile.objects.filter(organization_id=key.organization_id, public_id=file_id)).first()


@_v1(("GET", "DELETE"))
def file_detail(request, key, file_id: str):
    found = _file_listed(key, file_id)
    if found is None:
        return _not_found("file", file_id)
    if request.method == "DELETE":
        services.file_delete(file=found)
        return JsonResponse({"id": found.public_id, "object": "file", "deleted": True})
    return JsonResponse(file_object(found))


@_v1(("GET",))
def file_content(request, key, file_id: str):
    found = _file(key, file_id)
    if found is None:
        return _not_found("file", file_id)
    return HttpResponse(bytes(found.content), content_type="application/octet-stream")


def _batch(key, batch_id: str) -> Batch | None:
    return batches_with_files(Batch.objects.filter(organization_id=key.organization_id, public_id=batch_id)).first()


@_v1(("GET", "POST"))
def batches(request, key):
    if request.method == "GET":
        return _page(request, batches_with_files(Batch.objects.filter(organization_id=key.organization_id)), batch_object)
    try:
        body = orjson.loads(request.body)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        return _error(400, _("The request body must be a JSON object."), code="invalid_request_error")
    for field in ("input_file_id", "endpoint", "completion_window"):
        if not isinstance(body.get(field), str):
            return _error(400, _("%(field)s is required.") % {"field": field}, code="invalid_request_error", param=field)
    batch = services.batch_create(key=key, input_file_id=body["input_file_id"], endpoint=body["endpoint"],
                                  completion_window=body["completion_window"], metadata=body.get("metadata"), cap=body.get("tollgate_cap"),
                                  mode=body.get("tollgate_mode"))
    return JsonResponse(batch_object(_batch(key, batch.public_id)))


@_v1(("GET",))
def batch_detail(request, key, batch_id: str):
    found = _batch(key, batch_id)
    return JsonResponse(batch_object(found)) if found else _not_found("batch", batch_id)


def _control(action):
    @_v1(("POST",))
    def view(request, key, batch_id: str):
        found = _batch(key, batch_id)
        if found is None:
            return _not_found("batch", batch_id)
        action(batch=found)
        return JsonResponse(batch_object(_batch(key, batch_id)))

    view.__name__ = action.__name__
    return view


batch_cancel = _control(services.batch_cancel)
batch_pause = _control(services.batch_pause)
batch_resume = _control(services.batch_resume)
