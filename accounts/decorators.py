"""Access control for dashboard views: who may open a page, in which organization, with which role."""

from functools import wraps

from django.contrib.auth.views import redirect_to_login
from django.shortcuts import redirect, render
from django.utils import timezone

from accounts.client import client_ip  # noqa: F401 (views import it from here)
from accounts.permissions import Perm


def org_required(view):
    """A signed-in user with a current organization; otherwise the login or the "no organization" page."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        if not request.user.is_authenticated:
            return redirect_to_login(request.get_full_path())
        if not request.org_context:
            return redirect("no_organization")
        return view(request, *args, **kwargs)

    return wrapper


def permission_required(perm: Perm):
    """`org_required`, and the current role must hold `perm` (else a 403 page, not a redirect)."""

    def decorator(view):
        @wraps(view)
        def wrapper(request, *args, **kwargs):
            if not request.org_context.can(perm):
                return render(request, "accounts/forbidden.html", status=403)
            return view(request, *args, **kwargs)

        return org_required(wrapper)

    return decorator




def in_org_time_zone(view):
    """Dates shown, and date input read, in the organization's time zone, not the server's."""

    @wraps(view)
    def wrapper(request, *args, **kwargs):
        with timezone.override(request.org_context.organization.time_zone):
            return view(request, *args, **kwargs)

    return wrapper
