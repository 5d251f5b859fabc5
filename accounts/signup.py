"""Who may create an account (settings.TOLLGATE_SIGNUP) and the email verification of an open sign-up.

- "open": anyone signs up; the account cannot log in until its owner follows the emailed link (a signed,
  expiring token: `TOLLGATE_EMAIL_VERIFICATION_HOURS`), so nobody gets keys, invitations or API tokens on
  an address they do not hold. Logging in with the right password before that sends the link again.
- "invite": the sign-up page only says so; an invitation link is the one way to a new account (it proves
  the address, so those accounts are verified).
- "closed": no sign-up page at all (404), and invitations reach only existing accounts: an operator
  creates accounts (`createsuperuser`, the admin site, `tollgate_bootstrap`).
"""

from django.conf import settings
from django.core import signing
from django.core.mail import send_mail
from django.db import transaction
from django.urls import reverse
from django.utils.translation import gettext as _

from accounts.errors import ApplicationError
from accounts.models import User

OPEN, INVITE, CLOSED = "open", "invite", "closed"
_SALT = "tollgate.accounts.verify-email"


def mode() -> str:
    return settings.TOLLGATE_SIGNUP


def open_signup() -> bool:
    return mode() == OPEN


def invitations_create_accounts() -> bool:
    return mode() in (OPEN, INVITE)


def verification_token(user: User) -> str:
    # The address is signed in: a link stops working when the account's email changes.
    return signing.dumps({"u": user.pk, "e": user.email}, salt=_SALT, compress=True)


def verification_link(user: User) -> str:
    return settings.TOLLGATE_PUBLIC_URL.rstrip("/") + reverse("verify_email", args=[verification_token(user)])


def send_verification(user: User) -> None:
    """Email the link (after the transaction commits), in the active language."""
    link, hours = verification_link(user), settings.TOLLGATE_EMAIL_VERIFICATION_HOURS
    subject = _("Confirm your email address for Tollgate")
    body = _("Welcome to Tollgate. Confirm that %(email)s is your address within %(hours)s hours: %(link)s\n\n"
             "If you did not sign up, ignore this email.\n") % {"email": user.email, "hours": hours, "link": link}
    transaction.on_commit(lambda: send_mail(subject=subject, message=body, from_email=None, recipient_list=[user.email],
                                            fail_silently=True))


@transaction.atomic
def verify_email(*, token: str) -> User:
    """Mark the account of a valid link as verified (again is harmless); refuse a forged, stale or expired link."""
    try:
        data = signing.loads(token, salt=_SALT, max_age=settings.TOLLGATE_EMAIL_VERIFICATION_HOURS * 3600)
    except signing.SignatureExpired as exc:
        raise ApplicationError(_("This confirmation link has expired. Log in to get a new one."), code="expired_token") from exc
    except signing.BadSignature as exc:
        raise ApplicationError(_("This confirmation link is not valid."), code="invalid_token", status=404) from exc
    user = User.objects.select_for_update().filter(pk=data.get("u"), email=data.get("e")).first()
    if user is None:
        raise ApplicationError(_("This confirmation link is not valid."), code="invalid_token", status=404)
    if not user.email_verified:
        user.email_verified = True
        user.save(update_fields=["email_verified"])
        from accounts.services import audit_record

        for membership in user.memberships.select_related("organization"):
            audit_record(organization=membership.organization, actor=user, action="user.verify_email", target=user)
    return user
