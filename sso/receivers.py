"""After allauth logs a user in through SSO: the audit entry, and the organization they signed in to is current."""

from allauth.account.signals import user_logged_in
from django.dispatch import receiver

from accounts.client import client_ip
from accounts.tenancy import SESSION_ORG_KEY
from sso import services


@receiver(user_logged_in)
def sso_logged_in(sender, request, user, sociallogin=None, **kwargs):
    connection = getattr(sociallogin, "tollgate_connection", None)
    if connection is None:
        return
    request.session[SESSION_ORG_KEY] = connection.organization_id
    services.sso_login_record(connection=connection, user=user, ip=client_ip(request))
