from django.utils.functional import SimpleLazyObject

from accounts.tenancy import context_for_session


class CurrentOrganizationMiddleware:
    """Attach `request.org_context` (lazily: most static requests never need it)."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        request.org_context = SimpleLazyObject(lambda: context_for_session(request))
        return self.get_response(request)
