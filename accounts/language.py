"""The language switch: Django's set_language, returning only to a page that a GET can show.

The switch posts the current page's path as `next`. A page rendered from a form POST (a rotated key's
secret, a form with errors) may live at a URL that only accepts POST, and going back there would be a
405. So the switch returns to `next`, else the Referer, only when it is a same-site path whose view
answers GET; otherwise to the home page.
"""

import inspect
from urllib.parse import urlsplit

from django.http import QueryDict
from django.urls import Resolver404, resolve, reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST
from django.views.i18n import set_language as django_set_language


@require_POST
def set_language(request):
    post = request.POST.copy()
    post["next"] = _return_path(request, request.POST.get("next"), request.META.get("HTTP_REFERER"))
    request.POST = QueryDict(post.urlencode())
    return django_set_language(request)


def _return_path(request, *candidates) -> str:
    for url in candidates:
        if url and url_has_allowed_host_and_scheme(url, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
            parts = urlsplit(url)
            path = parts.path + (f"?{parts.query}" if parts.query else "")
            if accepts_get(parts.path):
                return path
    return reverse("home")


def accepts_get(path: str) -> bool:
    """Whether the view at `path` answers GET: a class-based view that defines get, or a function view
    that no require_http_methods (require_POST, …) in its decorator chain limits to other methods."""
    try:
        view = resolve(path).func
    except Resolver404:
        return False
    view_class = getattr(view, "view_class", None)
    if view_class is not None:
        return "get" in view_class.http_method_names and hasattr(view_class, "get")
    while view is not None:
        try:
            methods = inspect.getclosurevars(view).nonlocals.get("request_method_list")
        except TypeError:  # not a Python function (a callable object): nothing more to learn
            return True
        if methods is not None and "GET" not in methods:
            return False
        view = getattr(view, "__wrapped__", None)
    return True
