"""Dashboard pages of the accounts app.

Forms check the shape of input; every write goes through accounts.services, whose refusals
(ApplicationError) are shown on the form that caused them. Objects are always read through
`get_scoped_or_404`, so another organization's object is a 404.
"""

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import login
from django.contrib.auth.decorators import login_required
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.db import IntegrityError, transaction
from django.db.models import Count
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.cache import add_never_cache_headers
from django.utils.translation import gettext as _
from django.views.decorators.http import require_http_methods, require_POST

from accounts import selectors, services, signup as signup_policy
from accounts.decorators import client_ip, permission_required
from accounts.errors import ApplicationError
from accounts.forms import (
    ApiTokenForm,
    InvitationForm,
    InvitationSignupForm,
    MemberRoleForm,
    MemberTeamsForm,
    OrganizationCreateForm,
    OrganizationForm,
    SignupForm,
    TeamForm,
    assignable_roles,
    form_status,
    service_error,
)
from accounts.models import ApiToken, AuditLog, Invitation, Membership, Role, Team, User
from accounts.permissions import Perm
from accounts.tenancy import SESSION_ORG_KEY, get_scoped_or_404, scoped

AUDIT_PAGE_SIZE = 50
TOKEN_AUDIT_ENTRIES = 20
SIGNUP_EMAIL_KEY = "tollgate_signup_email"


def _forbidden(request):
    return render(request, "accounts/forbidden.html", status=403)


# --- Sign-up, organization choice -------------------------------------------------------------


@require_http_methods(["GET", "POST"])
def signup(request):
    """Open sign-up (TOLLGATE_SIGNUP=open); "invite" says how to join instead, "closed" has no such page."""
    if signup_policy.mode() == signup_policy.CLOSED:
        raise Http404("Not found.")
    if request.user.is_authenticated:
        return redirect("home")
    if not signup_policy.open_signup():
        return render(request, "registration/signup_invite_only.html", status=403 if request.method == "POST" else 200)
    form = SignupForm(request.POST) if request.method == "POST" else SignupForm()
    if request.method == "POST" and form.is_valid():
        data = form.cleaned_data
        try:
            user, _org = services.user_signup(
                email=data["email"], password=data["password1"], name=data["name"],
                organization_name=data["organization_name"], language=request.LANGUAGE_CODE, ip=client_ip(request),
            )
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            request.session[SIGNUP_EMAIL_KEY] = user.email
            return redirect("signup_sent")
    return render(request, "registration/signup.html", {"form": form}, status=form_status(form) if form.errors else 200)


def signup_sent(request):
    """After an open sign-up: where the confirmation link went."""
    email = request.session.get(SIGNUP_EMAIL_KEY)
    if not email:
        return redirect("login")
    hours = settings.TOLLGATE_EMAIL_VERIFICATION_HOURS
    return render(request, "registration/signup_sent.html", {"email": email, "hours": hours})


def verify_email(request, token):
    """The emailed link of an open sign-up: the account may log in from now on."""
    try:
        user = signup_policy.verify_email(token=token)
    except ApplicationError as exc:
        return render(request, "registration/verify_email_invalid.html", {"error": exc}, status=exc.status)
    request.session.pop(SIGNUP_EMAIL_KEY, None)
    messages.success(request, _("Your email address %(email)s is confirmed. Log in to start.") % {"email": user.email})
    return redirect("login")


@login_required
@require_http_methods(["GET", "POST"])
def no_organization(request):
    """Where a signed-in user without any membership lands; they may start a new organization."""
    if request.org_context:
        return redirect("home")
    form = OrganizationCreateForm(request.POST) if request.method == "POST" else OrganizationCreateForm()
    if request.method == "POST" and form.is_valid():
        try:
            org = services.organization_create(
                name=form.cleaned_data["name"], owner=request.user, language=request.LANGUAGE_CODE, ip=client_ip(request)
            )
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            request.session[SESSION_ORG_KEY] = org.pk
            messages.success(request, _("Organization %(org)s created.") % {"org": org.name})
            return redirect("home")
    return render(request, "accounts/no_organization.html", {"form": form}, status=form_status(form) if form.errors else 200)


@login_required
@require_POST
def org_switch(request):
    try:
        org_id = int(request.POST.get("organization", ""))
    except ValueError:
        raise Http404("Not found.") from None
    membership = get_object_or_404(Membership.objects.select_related("organization"), user=request.user, organization_id=org_id)
    request.session[SESSION_ORG_KEY] = membership.organization_id
    messages.info(request, _("Switched to %(org)s.") % {"org": membership.organization.name})
    # Home, not the page the switch came from: that page may show an object of the previous organization.
    return redirect("home")


# --- Members and invitations -------------------------------------------------------------------


def _members_page(request, *, invite_form=None, row_errors=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    manage = ctx.can(Perm.MANAGE_MEMBERS)
    teams = list(scoped(Team, org))
    memberships = selectors.members_visible_to(ctx).order_by("user__email")
    row_errors = row_errors or {}
    rows = []
    for membership in memberships:
        team_ids = {team.pk for team in membership.teams.all()}
        rows.append({
            "membership": membership,
            "team_ids": team_ids,
            "is_self": membership.user_id == request.user.pk,
            # Owners are only editable by owners; the service enforces it, this only hides dead controls.
            "editable": manage and (membership.role != Role.OWNER or ctx.can(Perm.MANAGE_OWNERS)),
            "errors": row_errors.get(membership.pk, []),
        })
    context = {
        "rows": rows,
        "teams": teams,
        "roles": assignable_roles(ctx),
        "can_manage": manage,
    }
    if manage:
        context["invite_form"] = invite_form or InvitationForm(org_context=ctx)
        context["invitations"] = (
            scoped(Invitation, org).filter(accepted_at=None, revoked_at=None).select_related("team", "invited_by")
        )
    return render(request, "accounts/members.html", context, status=status)


def _errors_of(form) -> list[str]:
    return [message for messages_ in form.errors.values() for message in messages_]


@permission_required(Perm.VIEW_ORG)
def members(request):
    return _members_page(request)


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def member_invite(request):
    ctx = request.org_context
    form = InvitationForm(request.POST, org_context=ctx)
    if form.is_valid():
        data = form.cleaned_data
        try:
            invitation, token = services.invitation_create(
                actor=ctx, email=data["email"], role=data["role"], team=data["team"], ip=client_ip(request)
            )
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            return _invitation_link_page(request, invitation=invitation, token=token)
    return _members_page(request, invite_form=form, status=form_status(form))


def _invitation_link_page(request, *, invitation, token, resent=False):
    """The link, once, in the response to the POST that made it (never in the session, a message or a
    redirect), so an inviter without working email can pass it on; it works only for the invited email."""
    context = {"nav_section": "members", "invitation": invitation, "link": services.invitation_link(token), "resent": resent}
    response = render(request, "accounts/invitation_link.html", context)
    add_never_cache_headers(response)  # no-store: the back button or a shared cache must not bring it back
    return response


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def member_role(request, pk):
    ctx = request.org_context
    membership = get_scoped_or_404(Membership.objects.select_related("user"), ctx.organization, pk=pk)
    form = MemberRoleForm(request.POST, org_context=ctx)
    if form.is_valid():
        try:
            services.membership_set_role(actor=ctx, membership=membership, role=form.cleaned_data["role"], ip=client_ip(request))
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(
                request,
                _("%(user)s is now %(role)s.") % {"user": membership.user, "role": Role(form.cleaned_data["role"]).label},
            )
            return redirect("members")
    return _members_page(request, row_errors={membership.pk: _errors_of(form)}, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def member_teams(request, pk):
    ctx = request.org_context
    membership = get_scoped_or_404(Membership.objects.select_related("user"), ctx.organization, pk=pk)
    form = MemberTeamsForm(request.POST, organization=ctx.organization)
    if form.is_valid():
        try:
            services.membership_set_teams(actor=ctx, membership=membership, teams=list(form.cleaned_data["teams"]), ip=client_ip(request))
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Teams of %(user)s saved.") % {"user": membership.user})
            return redirect("members")
    return _members_page(request, row_errors={membership.pk: _errors_of(form)}, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def member_remove(request, pk):
    ctx = request.org_context
    membership = get_scoped_or_404(Membership.objects.select_related("user"), ctx.organization, pk=pk)
    try:
        services.membership_remove(actor=ctx, membership=membership, ip=client_ip(request))
    except ApplicationError as exc:
        return _members_page(request, row_errors={membership.pk: [exc.message]}, status=exc.status)
    messages.success(request, _("%(user)s was removed from the organization.") % {"user": membership.user})
    return redirect("home" if membership.user_id == request.user.pk else "members")


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def invitation_revoke(request, pk):
    ctx = request.org_context
    invitation = get_scoped_or_404(Invitation, ctx.organization, pk=pk, accepted_at=None, revoked_at=None)
    try:
        services.invitation_revoke(actor=ctx, invitation=invitation, ip=client_ip(request))
    except ApplicationError as exc:  # accepted since the page was loaded
        messages.error(request, exc.message)
    else:
        messages.success(request, _("Invitation for %(email)s revoked.") % {"email": invitation.email})
    return redirect("members")


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def invitation_resend(request, pk):
    ctx = request.org_context
    invitation = get_scoped_or_404(Invitation, ctx.organization, pk=pk, accepted_at=None, revoked_at=None)
    try:
        invitation, token = services.invitation_resend(actor=ctx, invitation=invitation, ip=client_ip(request))
    except ApplicationError as exc:  # accepted or revoked since the page was loaded, or a role above the actor's
        messages.error(request, exc.message)
        return redirect("members")
    return _invitation_link_page(request, invitation=invitation, token=token, resent=True)


@require_http_methods(["GET", "POST"])
def invitation_accept(request, token):
    """Open to anyone holding the link; what they can do depends on who they are signed in as."""
    try:
        invitation = services.invitation_lookup(token=token)
    except ApplicationError as exc:
        return render(request, "accounts/invitation_invalid.html", {"error": exc}, status=exc.status)
    context = {"invitation": invitation}
    user = request.user
    if user.is_authenticated:
        if user.email.lower() != invitation.email.lower():
            return render(request, "accounts/invitation_accept.html", {**context, "wrong_user": True}, status=403)
        if request.method == "POST":
            try:
                membership = services.invitation_accept(token=token, user=user, ip=client_ip(request))
            except ApplicationError as exc:
                return render(request, "accounts/invitation_invalid.html", {"error": exc}, status=exc.status)
            return _joined(request, membership)
        return render(request, "accounts/invitation_accept.html", context)

    if User.objects.filter(email__iexact=invitation.email).exists():
        status = 400 if request.method == "POST" else 200
        return render(request, "accounts/invitation_accept.html", {**context, "account_exists": True}, status=status)
    if not signup_policy.invitations_create_accounts():  # TOLLGATE_SIGNUP=closed: an operator creates accounts
        status = 403 if request.method == "POST" else 200
        return render(request, "accounts/invitation_accept.html", {**context, "no_new_accounts": True}, status=status)
    form = InvitationSignupForm(request.POST if request.method == "POST" else None, email=invitation.email)
    if request.method == "POST" and form.is_valid():
        try:
            with transaction.atomic():
                new_user = User.objects.create_user(
                    email=invitation.email, password=form.cleaned_data["password1"], name=form.cleaned_data["name"].strip()
                )
                membership = services.invitation_accept(token=token, user=new_user, ip=client_ip(request))
        except IntegrityError:  # the same address signed up in the meantime
            form.add_error(None, _("An account with this email already exists. Log in to accept the invitation."))
        except ApplicationError as exc:
            return render(request, "accounts/invitation_invalid.html", {"error": exc}, status=exc.status)
        else:
            login(request, new_user)
            return _joined(request, membership)
    return render(request, "accounts/invitation_accept.html", {**context, "form": form}, status=400 if form.errors else 200)


def _joined(request, membership):
    request.session[SESSION_ORG_KEY] = membership.organization_id
    messages.success(request, _("You joined %(org)s.") % {"org": membership.organization.name})
    return redirect("home")


# --- Teams ---------------------------------------------------------------------------------------


def _teams_page(request, *, create_form=None, row_errors=None, status=200):
    org = request.org_context.organization
    row_errors = row_errors or {}
    teams = scoped(Team, org).annotate(member_count=Count("memberships"))
    rows = [{"team": team, "errors": row_errors.get(team.pk, [])} for team in teams]
    context = {
        "rows": rows,
        "can_manage": request.org_context.can(Perm.MANAGE_MEMBERS),
        "create_form": create_form or TeamForm(),
    }
    return render(request, "accounts/teams.html", context, status=status)


@permission_required(Perm.VIEW_ORG)
def teams(request):
    return _teams_page(request)


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def team_create(request):
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = services.team_create(actor=request.org_context, name=form.cleaned_data["name"], ip=client_ip(request))
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Team %(team)s created.") % {"team": team.name})
            return redirect("teams")
    return _teams_page(request, create_form=form, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def team_rename(request, pk):
    ctx = request.org_context
    team = get_scoped_or_404(Team, ctx.organization, pk=pk)
    form = TeamForm(request.POST)
    if form.is_valid():
        try:
            team = services.team_rename(actor=ctx, team=team, name=form.cleaned_data["name"], ip=client_ip(request))
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            messages.success(request, _("Team renamed to %(team)s.") % {"team": team.name})
            return redirect("teams")
    return _teams_page(request, row_errors={team.pk: _errors_of(form)}, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_MEMBERS)
def team_delete(request, pk):
    ctx = request.org_context
    team = get_scoped_or_404(Team, ctx.organization, pk=pk)
    name = team.name
    services.team_delete(actor=ctx, team=team, ip=client_ip(request))
    messages.success(request, _("Team %(team)s deleted.") % {"team": name})
    return redirect("teams")


# --- Organization settings and audit log ----------------------------------------------------------


@require_http_methods(["GET", "POST"])
@permission_required(Perm.VIEW_ORG)
def org_settings(request):
    ctx = request.org_context
    can_edit = ctx.can(Perm.MANAGE_ORG)
    if request.method == "POST" and not can_edit:
        return _forbidden(request)
    form = OrganizationForm.for_organization(ctx.organization, request.POST if request.method == "POST" else None)
    if request.method == "POST" and form.is_valid():
        try:
            services.organization_update(actor=ctx, ip=client_ip(request), **form.cleaned_data)
        except ApplicationError as exc:
            service_error(form, exc)
        except ValidationError as exc:  # model validation the form did not foresee
            ctx.organization.refresh_from_db()  # the service set the rejected values on this instance
            form.add_error(None, exc.messages)
        else:
            messages.success(request, _("Settings saved."))
            return redirect("org_settings")
    return render(
        request, "accounts/org_settings.html", {"form": form, "can_edit": can_edit},
        status=form_status(form) if form.errors else 200,
    )


@permission_required(Perm.VIEW_AUDIT)
def audit_log(request):
    entries = scoped(AuditLog, request.org_context.organization)
    page = Paginator(entries, AUDIT_PAGE_SIZE).get_page(request.GET.get("page"))
    return render(request, "accounts/audit_log.html", {"page": page})


# --- Org API tokens ------------------------------------------------------------------------------------
# A new token's secret is rendered straight into the response of the POST that made it, with
# Cache-Control: no-store; only its keyed hash is kept, and it is never put in the session, a message or a URL.


def _api_tokens_page(request, *, form=None, status=200):
    ctx = request.org_context
    org = ctx.organization
    context = {
        "nav_section": "api_tokens",
        "tokens": selectors.api_token_list(organization=org),
        "form": form or ApiTokenForm(org_context=ctx),
        "entries": scoped(AuditLog, org).filter(action__startswith="api_token.").select_related("actor")[:TOKEN_AUDIT_ENTRIES],
    }
    return render(request, "accounts/api_tokens.html", context, status=status)


@permission_required(Perm.MANAGE_ORG)
def api_tokens(request):
    return _api_tokens_page(request)


@require_POST
@permission_required(Perm.MANAGE_ORG)
def api_token_create(request):
    ctx = request.org_context
    form = ApiTokenForm(request.POST, org_context=ctx)
    if form.is_valid():
        try:
            token, secret = services.api_token_create(
                organization=ctx.organization, actor=ctx.user, ip=client_ip(request), **form.cleaned_data
            )
        except ApplicationError as exc:
            service_error(form, exc)
        else:
            response = render(request, "accounts/api_token_secret.html", {"nav_section": "api_tokens", "token": token, "secret": secret})
            add_never_cache_headers(response)  # no-store: the back button or a shared cache must not bring it back
            return response
    return _api_tokens_page(request, form=form, status=form_status(form))


@require_POST
@permission_required(Perm.MANAGE_ORG)
def api_token_revoke(request, pk):
    ctx = request.org_context
    token = get_scoped_or_404(ApiToken, ctx.organization, pk=pk)
    services.api_token_revoke(actor=ctx, token=token, ip=client_ip(request))
    messages.success(request, _("API token %(name)s revoked. It stopped working at once.") % {"name": token.name})
    return redirect("api_tokens")
