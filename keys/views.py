"""Dashboard pages for virtual keys, provider credentials, models and deployments.

Forms check the shape of input; every write goes through keys.services, whose refusals
(ApplicationError) are shown on the form that caused them. Objects are read through
`get_scoped_or_404` (keys through the caller's visible keys), so another organization's object,
or another member's key, is a 404.

A new or rotated secret is rendered straight into the response of the POST that made it, with
Cache-Control: no-store. It is never put in the session, a message or a redirect URL.
"""

import json
from datetime import datetime, timezone as dt_timezone

from django.conf import settings
from django.contrib import messages
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count, Min
from django.shortcuts import redirect, render
from django.utils import timezone
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import client_ip, in_org_time_zone, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.permissions import Perm
from accounts.tenancy import get_scoped_or_404
from keys import selectors, services
from keys.balances import balance_check, balance_is_low, balance_supported
from keys.discovery import credential_models
from keys.extensions import key_billing
from keys.forms import (
    CredentialCreateForm,
    CredentialTestForm,
    CredentialUpdateForm,
    DeploymentForm,
    KeyCreateForm,
    KeyFilterForm,
    KeyRotateForm,
    KeyUpdateForm,
    ModelCreateForm,
    ModelUpdateForm,
)
from keys.models import Deployment, Model, ProviderCredential
from keys.health import probe_cooled_until
from keys.probes import deployment_health_chart, deployment_probe, deployment_probe_history
from keys.testing import credential_test as run_credential_test, credential_test_all as run_credential_test_all
from wire.presets import PRESETS

KEY_PAGE_SIZE = 50


def _validation_error(form, exc: ValidationError) -> None:
    """Model validation the form did not foresee, shown on the field it names when the form has it."""
    for field, errors in exc.message_dict.items() if hasattr(exc, "error_dict") else [(None, exc.messages)]:
        form.add_error(field if field in form.fields else None, errors)


def public_api_base() -> str:
    return settings.TOLLGATE_PUBLIC_URL.rstrip("/") + "/v1"


def sdk_snippet(*, model: str, secret: str | None = None, prefix: str = "") -> str:
    """Python for the official openai SDK; the secret itself only on the page that shows it once."""
    if secret:
        head = ["from openai import OpenAI", "", "client = OpenAI(", f"    base_url={json.dumps(public_api_base())},",
                f"    api_key={json.dumps(secret)},", ")"]
    else:
        hint = _("the key's secret, starting with %(prefix)s…") % {"prefix": prefix} if prefix else _("your key's secret")
        head = ["import os", "", "from openai import OpenAI", "", "client = OpenAI(",
                f"    base_url={json.dumps(public_api_base())},",
                f'    api_key=os.environ["TOLLGATE_API_KEY"],  # {hint}', ")"]
    return "\n".join([
        *head,
        "response = client.chat.completions.create(",
        f"    model={json.dumps(model)},",
        '    messages=[{"role": "user", "content": "Hello!"}],',
        ")",
        "print(response.choices[0].message.content)",
        "",
    ])


def _snippet_model(key) -> str:
    if key.allowed_models:
        return key.allowed_models[0]
    name = Model.objects.filter(organization_id=key.organization_id, is_active=True).order_by("name").values_list("name", flat=True).first()
    return name or "MODEL_NAME"


# --- Virtual keys ----------------------------------------------------------------------------------------


def _visible_key_or_404(request, pk):
    ctx = request.org_context
    return get_scoped_or_404(selectors.virtual_key_visible_list(actor=ctx), ctx.organization, pk=pk)


def _budget_form(ctx, *, key=None, data=None):
    """The key form's budget fields (billing's, through keys.extensions), or None."""
    billing = key_billing()
    return billing.budget_form(org_context=ctx, key=key, data=data) if billing else None


def _with_spend(organization, keys) -> list:
    """Attach `spend` (this period's spend and what the key's own budget leaves) to each key, in a fixed
    number of queries for the whole list."""
    keys = list(keys)
    billing = key_billing()
    spend = billing.spend(organization=organization, key_ids=[key.pk for key in keys]) if billing else {}
    for key in keys:
        key.spend = spend.get(key.pk)
    return keys


def _keys_page(request, *, create_form=None, budget_form=None, status=200):
    ctx = request.org_context
    filter_form = KeyFilterForm(request.GET or None, org_context=ctx)
    keys = filter_form.filter(selectors.virtual_key_visible_list(actor=ctx))
    page = Paginator(keys, KEY_PAGE_SIZE).get_page(request.GET.get("page"))
    page.object_list = _with_spend(ctx.organization, page.object_list)
    query = request.GET.copy()
    query.pop("page", None)
    context = {
        "nav_section": "keys",
        "page": page,
        "filter_form": filter_form,
        "filter_query": query.urlencode(),
        "filtered": bool(filter_form.is_bound and any(filter_form.cleaned_data.values())),
        "create_form": create_form or KeyCreateForm(org_context=ctx),
        "budget_form": budget_form or _budget_form(ctx),
        "shows_spend": key_billing() is not None,
        "manages_all": ctx.can(Perm.MANAGE_KEYS),
        "now": timezone.now(),
    }
    return render(request, "keys/keys.html", context, status=status)


@permission_required(Perm.MANAGE_OWN_KEYS)
@in_org_time_zone
def keys(request):
    return _keys_page(request)


def _secret_page(request, *, key, secret, rotated=False):
    context = {
        "nav_section": "keys",
        "key": key,
        "secret": secret,
        "rotated": rotated,
        "snippet": sdk_snippet(model=_snippet_model(key), secret=secret),
        "api_base": public_api_base(),
    }
    response = render(request, "keys/key_secret.html", context)
    add_never_cache_headers(response)  # no-store: the back button or a shared cache must not bring it back
    return response


def _save_key(ctx, request, form, budget_form, save) -> tuple | None:
    """Run a key service and then the key's budget (if the form has one) in one transaction: a refused budget
    leaves no key behind. Refusals land on the form they concern; returns the service's result or None."""
    try:
        with transaction.atomic():
            result = save()
            if budget_form is not None:
                key = result[0] if isinstance(result, tuple) else result
                try:
                    key_billing().budget_save(org_context=ctx, key=key, form=budget_form, ip=client_ip(request))
                except ApplicationError as exc:
                    service_error(budget_form, exc)
                    raise
    except ApplicationError as exc:
        if not budget_form or not budget_form.errors:
            service_error(form, exc)
        return None
    return result


@require_POST
@permission_required(Perm.MANAGE_OWN_KEYS)
@in_org_time_zone
def key_create(request):
    ctx = request.org_context
    form = KeyCreateForm(request.POST, org_context=ctx)
    budget_form = _budget_form(ctx, data=request.POST)
    if form.is_valid() and (budget_form is None or budget_form.is_valid()):
        created = _save_key(
            ctx, request, form, budget_form,
            lambda: services.virtual_key_create(actor=ctx, ip=client_ip(request), **form.service_kwargs()),
        )
        if created is not None:
            key, secret = created
            return _secret_page(request, key=key, secret=secret)
    status = form_status(budget_form) if budget_form is not None and budget_form.errors and not form.errors else form_status(form)
    return _keys_page(request, create_form=form, budget_form=budget_form, status=status)


def _key_detail_page(request, key, *, edit_form=None, budget_form=None, rotate_form=None, status=200):
    ctx = request.org_context
    edit_form = edit_form or KeyUpdateForm.for_key(key, org_context=ctx)
    budget_form = budget_form or _budget_form(ctx, key=key)
    rotate_form = rotate_form or KeyRotateForm()
    _with_spend(ctx.organization, [key])
    context = {
        "nav_section": "keys",
        "key": key,
        "edit_form": edit_form,
        "budget_form": budget_form,
        "rotate_form": rotate_form,
        # A revoked key's page has no forms to show their refusals on ("a revoked key cannot be rotated").
        "page_errors": [*edit_form.non_field_errors(), *rotate_form.non_field_errors()] if key.revoked_at else [],
        "snippet": sdk_snippet(model=_snippet_model(key), prefix=key.prefix),
        "api_base": public_api_base(),
        "now": timezone.now(),
    }
    return render(request, "keys/key_detail.html", context, status=status)


@permission_required(Perm.MANAGE_OWN_KEYS)
@in_org_time_zone
def key_detail(request, pk):
    return _key_detail_page(request, _visible_key_or_404(request, pk))


@require_POST
@permission_required(Perm.MANAGE_OWN_KEYS)
@in_org_time_zone
def key_update(request, pk):
    ctx = request.org_context
    key = _visible_key_or_404(request, pk)
    form = KeyUpdateForm.for_key(key, org_context=ctx, data=request.POST)
    budget_form = _budget_form(ctx, key=key, data=request.POST)
    if form.is_valid() and (budget_form is None or budget_form.is_valid()):
        saved = _save_key(
            ctx, request, form, budget_form,
            lambda: services.virtual_key_update(actor=ctx, key=key, ip=client_ip(request), **form.cleaned_data),
        )
        if saved is not None:
            messages.success(request, _("Key %(name)s saved.") % {"name": key.name})
            return redirect("key_detail", pk=key.pk)
        key.refresh_from_db()  # the service may have set some fields before refusing
    status = form_status(budget_form) if budget_form is not None and budget_form.errors and not form.errors else form_status(form)
    return _key_detail_page(request, key, edit_form=form, budget_form=budget_form, status=status)


@require_POST
@permission_required(Perm.MANAGE_OWN_KEYS)
@in_org_time_zone
def key_rotate(request, pk):
    ctx = request.org_context
    key = _visible_key_or_404(request, pk)
    form = KeyRotateForm(request.POST)
    if form.is_valid():
        try:
            key, secret = services.virtual_key_rotate(actor=ctx, key=key, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            return _secret_page(request, key=key, secret=secret, rotated=True)
    return _key_detail_page(request, key, rotate_form=form, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_OWN_KEYS)
def key_revoke(request, pk):
    key = _visible_key_or_404(request, pk)
    try:
        services.virtual_key_revoke(actor=request.org_context, key=key, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect("key_detail", pk=key.pk)
    messages.success(request, _("Key %(name)s revoked. It stopped working at once.") % {"name": key.name})
    return redirect("keys")


# --- Provider credentials ---------------------------------------------------------------------------------


def _providers_page(request, *, create_form=None, test_errors=None, status=200):
    org = request.org_context.organization
    credentials = selectors.credential_list(organization=org).annotate(
        deployment_count=Count("deployments"), sample_model=Min("deployments__upstream_model"),
    )
    test_errors = test_errors or {}
    rows = [
        {
            "credential": credential,
            "preset": PRESETS.get(credential.provider),
            "test_errors": test_errors.get(credential.pk, []),
            "balance_supported": balance_supported(credential),
            "balance_low": balance_is_low(credential),
        }
        for credential in credentials
    ]
    context = {
        "nav_section": "providers",
        "rows": rows,
        "can_manage": request.org_context.can(Perm.MANAGE_PROVIDERS),
        "create_form": create_form or CredentialCreateForm(),
    }
    return render(request, "keys/providers.html", context, status=status)


@permission_required(Perm.VIEW_ORG)
def providers(request):
    return _providers_page(request)


def _save_credential(form, save) -> ProviderCredential | None:
    """Run a credential service; its refusals land on the form."""
    try:
        return save()
    except ApplicationError as exc:
        service_error(form, exc)
    except ValidationError as exc:
        _validation_error(form, exc)
    except IntegrityError:  # the same name saved in the meantime
        form.add_error("name", _("A credential with this name already exists."))
    return None


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_create(request):
    ctx = request.org_context
    form = CredentialCreateForm(request.POST)
    if form.is_valid():
        credential = _save_credential(
            form, lambda: services.credential_create(actor=ctx, ip=client_ip(request), **form.service_kwargs())
        )
        if credential is not None:
            messages.success(request, _("Credential %(name)s added.") % {"name": credential.name})
            return redirect("providers")
    return _providers_page(request, create_form=form, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_edit(request, pk):
    ctx = request.org_context
    credential = get_scoped_or_404(ProviderCredential, ctx.organization, pk=pk)
    try:
        header_names = sorted(selectors.credential_extra_headers(credential))
    except ValueError:  # encrypted under a key no longer configured; saving new headers replaces them
        header_names = ["?"]
    form = CredentialUpdateForm.for_credential(
        credential, header_names=header_names, data=request.POST if request.method == "POST" else None
    )
    if request.method == "POST" and form.is_valid():
        saved = _save_credential(
            form, lambda: services.credential_update(actor=ctx, credential=credential, ip=client_ip(request), **form.service_kwargs())
        )
        if saved is not None:
            messages.success(request, _("Credential %(name)s saved.") % {"name": saved.name})
            return redirect("providers")
        credential.refresh_from_db()  # the service set the refused values on this instance
    return _credential_page(request, credential, form=form, status=form_status(form) if form.errors else 200)


def _credential_page(request, credential, *, form=None, fetched=None, fetch_error="", test_results=None, status=200):
    """The credential page: its settings form, balance, "fetch models" and "test all"."""
    if form is None:
        try:
            header_names = sorted(selectors.credential_extra_headers(credential))
        except ValueError:
            header_names = ["?"]
        form = CredentialUpdateForm.for_credential(credential, header_names=header_names)
    deployed = set(credential.deployments.values_list("upstream_model", flat=True))
    context = {
        "nav_section": "providers", "credential": credential, "preset": PRESETS.get(credential.provider), "form": form,
        "balance_supported": balance_supported(credential), "balance_low": balance_is_low(credential),
        "fetched": [{"name": name, "deployed": name in deployed} for name in fetched] if fetched is not None else None,
        "fetch_error": fetch_error, "test_results": test_results, "deployment_count": len(deployed),
    }
    return render(request, "keys/credential_edit.html", context, status=status)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_models_fetch(request, pk):
    credential = get_scoped_or_404(ProviderCredential, request.org_context.organization, pk=pk)
    try:
        names = credential_models(credential=credential)
    except ApplicationError as exc:
        return _credential_page(request, credential, fetch_error=exc.message, status=exc.status)
    return _credential_page(request, credential, fetched=names)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_models_create(request, pk):
    ctx = request.org_context
    credential = get_scoped_or_404(ProviderCredential, ctx.organization, pk=pk)
    chosen = request.POST.getlist("models")
    try:
        result = services.deployments_create_from_upstream(actor=ctx, credential=credential, upstream_models=chosen, ip=client_ip(request))
    except ApplicationError as exc:
        offered = [n for n in request.POST.getlist("offered") if n][: services.MAX_MODELS_PER_IMPORT * 10]
        return _credential_page(request, credential, fetched=offered, fetch_error=exc.message, status=exc.status)
    if result["created"] or result["extended"]:
        messages.success(request, _("Models created: %(created)s. Deployments added to existing models: %(extended)s.") % {
            "created": ", ".join(result["created"]) or "—", "extended": ", ".join(result["extended"]) or "—",
        })
    if result["skipped"]:
        messages.info(request, _("Already deployed on this credential: %(names)s.") % {"names": ", ".join(result["skipped"])})
    return redirect("credential_edit", pk=credential.pk)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_test_all(request, pk):
    ctx = request.org_context
    credential = get_scoped_or_404(ProviderCredential, ctx.organization, pk=pk)
    results = run_credential_test_all(actor=ctx, credential=credential)
    return _credential_page(request, credential, test_results=results)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_balance(request, pk):
    credential = get_scoped_or_404(ProviderCredential, request.org_context.organization, pk=pk)
    if not balance_supported(credential):
        messages.error(request, _("This provider has no balance endpoint."))
    else:
        balance_check(credential=credential)
        report = messages.error if credential.balance_error else messages.success
        report(request, credential.balance_error or _("Balance updated."))
    return redirect("credential_edit", pk=credential.pk)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_delete(request, pk):
    ctx = request.org_context
    credential = get_scoped_or_404(ProviderCredential, ctx.organization, pk=pk)
    name = credential.name
    try:
        services.credential_delete(actor=ctx, credential=credential, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, _("%(name)s was not deleted: %(reason)s") % {"name": name, "reason": exc.message})
    else:
        messages.success(request, _("Credential %(name)s deleted.") % {"name": name})
    return redirect("providers")


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def credential_test(request, pk):
    ctx = request.org_context
    credential = get_scoped_or_404(ProviderCredential, ctx.organization, pk=pk)
    form = CredentialTestForm(request.POST)
    if not form.is_valid():
        errors = [message for field_errors in form.errors.values() for message in field_errors]
        return _providers_page(request, test_errors={credential.pk: errors}, status=400)
    try:
        ok, message, _latency = run_credential_test(actor=ctx, credential=credential, upstream_model=form.cleaned_data["upstream_model"])
    except ApplicationError as exc:
        return _providers_page(request, test_errors={credential.pk: [exc.message]}, status=exc.status)
    report = messages.success if ok else messages.error
    report(request, _("Test of %(name)s with %(model)s: %(message)s") % {
        "name": credential.name, "model": form.cleaned_data["upstream_model"], "message": message,
    })
    return redirect("providers")


# --- Models and deployments -------------------------------------------------------------------------------


def _model_rows(models, *, deployment_forms):
    rows = []
    for model in models:
        deployments = list(model.deployments.all())
        total = sum(d.weight for d in deployments if d.is_active)
        rows.append({
            "model": model,
            "deployments": [
                {"deployment": d, "share": (100 * d.weight / total) if d.is_active and total else None}
                for d in deployments
            ],
            "deployment_form": deployment_forms.get(model.pk),
        })
    return rows


def _models_page(request, *, create_form=None, deployment_forms=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    can_manage = ctx.can(Perm.MANAGE_PROVIDERS)
    models = list(selectors.model_list(organization=org))
    credentials = list(selectors.credential_list(organization=org)) if can_manage else []
    forms_by_model = dict(deployment_forms or {})
    if can_manage:
        for model in models:
            if model.pk not in forms_by_model:
                forms_by_model[model.pk] = DeploymentForm(organization=org, credentials=credentials, prefix=f"model-{model.pk}")
    context = {
        "nav_section": "models",
        "rows": _model_rows(models, deployment_forms=forms_by_model),
        "can_manage": can_manage,
        "can_view_usage": ctx.can(Perm.VIEW_USAGE),
        "has_credentials": bool(credentials),
        "create_form": create_form or ModelCreateForm(),
    }
    return render(request, "keys/models.html", context, status=status)


@permission_required(Perm.VIEW_ORG)
def models(request):
    return _models_page(request)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def model_create(request):
    form = ModelCreateForm(request.POST)
    if form.is_valid():
        try:
            model = services.model_create(actor=request.org_context, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        except IntegrityError:  # the same name saved in the meantime
            form.add_error("name", _("A model with this name already exists."))
        else:
            messages.success(request, _("Model %(name)s created. Add a deployment to serve it.") % {"name": model.name})
            return redirect("models")
    return _models_page(request, create_form=form, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_PROVIDERS)
def model_edit(request, pk):
    ctx = request.org_context
    model = get_scoped_or_404(Model, ctx.organization, pk=pk)
    form = ModelUpdateForm.for_model(model, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.model_update(actor=ctx, model=model, ip=client_ip(request), **form.service_kwargs())
        except ApplicationError as exc:  # e.g. a fallback cycle, shown on fallback_models
            model.refresh_from_db()
            service_error(form, exc)
        else:
            messages.success(request, _("Model %(name)s saved.") % {"name": model.name})
            return redirect("models")
    context = {
        "nav_section": "models", "model": model, "form": form,
        "can_view_usage": ctx.can(Perm.VIEW_USAGE),
        "routing_has_errors": any(field.errors for field in form.policy_fields()),
    }
    return render(request, "keys/model_edit.html", context, status=form_status(form) if form.errors else 200)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def model_delete(request, pk):
    ctx = request.org_context
    model = get_scoped_or_404(Model, ctx.organization, pk=pk)
    name = model.name
    try:
        services.model_delete(actor=ctx, model=model, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, _("%(name)s was not deleted: %(reason)s") % {"name": name, "reason": exc.message})
    else:
        messages.success(request, _("Model %(name)s and its deployments deleted.") % {"name": name})
    return redirect("models")


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def deployment_create(request, pk):
    ctx = request.org_context
    model = get_scoped_or_404(Model, ctx.organization, pk=pk)
    form = DeploymentForm(
        request.POST, organization=ctx.organization, prefix=f"model-{model.pk}",
        credentials=list(selectors.credential_list(organization=ctx.organization)),
    )
    if form.is_valid():
        try:
            services.deployment_create(actor=ctx, model=model, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Deployment added to %(name)s.") % {"name": model.name})
            return redirect("models")
    return _models_page(request, deployment_forms={model.pk: form}, status=form_status(form))


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_PROVIDERS)
@in_org_time_zone
def deployment_edit(request, pk):
    ctx = request.org_context
    deployment = get_scoped_or_404(Deployment.objects.select_related("model", "credential"), ctx.organization, pk=pk)
    form = DeploymentForm.for_deployment(deployment, data=request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.deployment_update(actor=ctx, deployment=deployment, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            deployment.refresh_from_db()
            service_error(form, exc)
        else:
            messages.success(request, _("Deployment of %(name)s saved.") % {"name": deployment.model.name})
            return redirect("models")
    cooled_until = probe_cooled_until(deployment.pk)
    context = {
        "nav_section": "models", "deployment": deployment, "form": form, "probes": deployment_probe_history(deployment=deployment),
        "health_chart": deployment_health_chart(deployment=deployment),
        "cooled_until": datetime.fromtimestamp(cooled_until, tz=dt_timezone.utc) if cooled_until else None,
    }
    return render(request, "keys/deployment_edit.html", context, status=form_status(form) if form.errors else 200)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def deployment_probe_now(request, pk):
    deployment = get_scoped_or_404(Deployment.objects.select_related("credential"), request.org_context.organization, pk=pk)
    result = deployment_probe(deployment=deployment)
    (messages.success if result.ok else messages.error)(request, _("Probe: %(message)s") % {"message": result.message})
    return redirect("deployment_edit", pk=deployment.pk)


@require_POST
@permission_required(Perm.MANAGE_PROVIDERS)
def deployment_delete(request, pk):
    ctx = request.org_context
    deployment = get_scoped_or_404(Deployment.objects.select_related("model"), ctx.organization, pk=pk)
    name = deployment.model.name
    try:
        services.deployment_delete(actor=ctx, deployment=deployment, ip=client_ip(request))
    except ApplicationError as exc:  # e.g. the last active deployment of an active model
        messages.error(request, _("The deployment was not removed from %(name)s: %(reason)s") % {"name": name, "reason": exc.message})
    else:
        messages.success(request, _("Deployment removed from %(name)s.") % {"name": name})
    return redirect("models")
