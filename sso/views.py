"""Pages for single sign-on: the login page with its "Sign in with …" button, the start of a sign-in, settings.

The login page shows an organization's button only when asked for it (/login/?org=<slug> or /sso/<slug>/):
listing every tenant's identity provider on a public page would tell anyone who uses Tollgate.
"""

from allauth.socialaccount.adapter import get_adapter
from allauth.socialaccount.providers.oauth2.client import OAuth2Error
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.http import Http404
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.cache import add_never_cache_headers
from django.utils.http import url_has_allowed_host_and_scheme
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST
from requests import RequestException

from accounts.decorators import client_ip, permission_required
from accounts.errors import ApplicationError
from accounts.forms import form_status, service_error
from accounts.models import AuditLog
from accounts.permissions import Perm
from accounts.tenancy import scoped
from sso import kinds, selectors, services
from sso.adapter import SSO_ORG_SESSION_KEY, refusal_page
from sso.forms import SsoAwareLoginForm, SsoConnectionForm

AUDIT_ENTRIES = 20


class LoginView(auth_views.LoginView):
    """Django's login with our form; the "Sign in with …" button of the organization the page was asked for."""

    authentication_form = SsoAwareLoginForm
    redirect_authenticated_user = True
    connection = None

    def get_context_data(self, **kwargs):
        context = super().get_context_data(**kwargs)
        form = context.get("form")
        connection = self.connection or getattr(form, "sso_connection", None)
        slug = self.request.GET.get("org", "").strip()
        if connection is None and slug:
            connection = selectors.connection_for_slug(slug)
        context["sso_connection"] = connection
        return context


def sso_login(request, slug):
    """/sso/<slug>/: the login page with that organization's button (404 without an enabled connection)."""
    connection = selectors.connection_for_slug(slug)
    if connection is None:
        raise Http404("Not found.")
    return LoginView.as_view(connection=connection)(request)


@require_POST
def sso_start(request, slug):
    """The button's POST: remember the organization, then send the browser to its identity provider."""
    connection = selectors.connection_for_slug(slug)
    if connection is None:
        raise Http404("Not found.")
    request.session[SSO_ORG_SESSION_KEY] = connection.organization_id
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        next_url = None
    provider = get_adapter(request).get_provider(request, connection.provider_id)
    try:
        response = provider.redirect(request, process="login", next_url=next_url or reverse("home"))
    except (OAuth2Error, RequestException):  # discovery unreachable, refused by the egress rules, or inconsistent
        services.sso_refusal_record(connection=connection, email="", reason="provider_unreachable", ip=client_ip(request))
        message = _("%(provider)s cannot be reached or answered something Tollgate cannot use. Ask your administrator to check the single sign-on settings.") % {"provider": connection.button_name}
        return refusal_page(request, message, connection=connection, status=400)
    if response.status_code != 302:
        return response
    # Not a 302: the CSP's form-action 'self' covers a form's redirects too, so the browser would block the
    # hop to the provider. A page that moves on by itself (meta refresh, a link without script) is outside it.
    response = render(request, "sso/redirect.html", {"connection": connection, "url": response["Location"]})
    add_never_cache_headers(response)
    return response


def callback_url(request, connection) -> str:
    if connection.kind == kinds.OIDC:
        path = reverse("openid_connect_callback", kwargs={"provider_id": connection.provider_id})
    else:
        path = reverse(f"{kinds.ALLAUTH_PROVIDER[connection.kind]}_callback")
    return request.build_absolute_uri(path)


def _settings_page(request, *, form=None, status=200):
    ctx = request.org_context
    connection = selectors.connection_for_org(ctx.organization.pk)
    context = {
        "nav_section": "sso",
        "connection": connection,
        "form": form or SsoConnectionForm(connection=connection),
        "callback_url": callback_url(request, connection) if connection else None,
        "login_url": request.build_absolute_uri(reverse("sso_login", args=[ctx.organization.slug])) if connection else None,
        "entries": scoped(AuditLog, ctx.organization).filter(action__startswith="sso.").select_related("actor")[:AUDIT_ENTRIES],
    }
    return render(request, "sso/settings.html", context, status=status)


@require_http_methods(["GET", "POST"])
@permission_required(Perm.MANAGE_ORG)
def sso_settings(request):
    if request.method == "GET":
        return _settings_page(request)
    ctx = request.org_context
    connection = selectors.connection_for_org(ctx.organization.pk)
    form = SsoConnectionForm(request.POST, connection=connection)
    if form.is_valid():
        data = dict(form.cleaned_data)
        secret = data.pop("client_secret", "")
        try:
            services.sso_connection_save(actor=ctx, client_secret=secret, ip=client_ip(request), **data)
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Single sign-on settings saved."))
            return redirect("sso_settings")
    return _settings_page(request, form=form, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_ORG)
def sso_delete(request):
    try:
        services.sso_connection_delete(actor=request.org_context, ip=client_ip(request))
    except ApplicationError as exc:
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Single sign-on removed. Members log in with their passwords."))
    return redirect("sso_settings")
