from accounts import signup
from accounts.permissions import Perm
from accounts.tenancy import memberships_of


def organization(request):
    context = getattr(request, "org_context", None)
    if context is None or not context:
        return {"org_context": None, "Perm": Perm, "signup_open": signup.open_signup()}
    return {
        "org_context": context,
        "current_org": context.organization,
        "current_role": context.role,
        "user_memberships": memberships_of(request.user) if request.user.is_authenticated else [],
        "Perm": Perm,
    }
