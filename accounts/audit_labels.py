"""What the audit page calls an action ("key.rotate") and an object type ("virtualkey"), in the reader's language.

The log stores stable codes (the API returns them as they are); these labels are for people. An action
without its own label is composed from its object and its verb ("price.update": "Price updated"), so a
new action written elsewhere still reads as words; only an unknown code shows as the code.
"""

from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy, pgettext_lazy

# The object of an action (its prefix) and the object types of targets (model names).
OBJECTS = {
    "organization": gettext_lazy("Organization"),
    "team": gettext_lazy("Team"),
    "member": gettext_lazy("Member"),
    "membership": gettext_lazy("Member"),
    "invitation": gettext_lazy("Invitation"),
    "api_token": gettext_lazy("API token"),
    "apitoken": gettext_lazy("API token"),
    "key": gettext_lazy("Virtual key"),
    "virtualkey": gettext_lazy("Virtual key"),
    "credential": gettext_lazy("Provider credential"),
    "providercredential": gettext_lazy("Provider credential"),
    "model": gettext_lazy("Model"),
    "deployment": gettext_lazy("Deployment"),
    "price": gettext_lazy("Price"),
    "exchange_rate": gettext_lazy("Exchange rate"),
    "exchangerate": gettext_lazy("Exchange rate"),
    "budget": gettext_lazy("Budget"),
    "alert_channel": gettext_lazy("Alert channel"),
    "alertchannel": gettext_lazy("Alert channel"),
    "user": gettext_lazy("User"),
    "creditaccount": gettext_lazy("Credit balance"),
    "creditpolicy": gettext_lazy("Credit policy"),
    "sso": gettext_lazy("Single sign-on"),
    "ssoconnection": gettext_lazy("Single sign-on"),
}

VERBS = {
    "create": pgettext_lazy("audit", "created"),
    "update": pgettext_lazy("audit", "changed"),
    "delete": pgettext_lazy("audit", "deleted"),
    "rename": pgettext_lazy("audit", "renamed"),
    "revoke": pgettext_lazy("audit", "revoked"),
    "rotate": pgettext_lazy("audit", "rotated"),
    "accept": pgettext_lazy("audit", "accepted"),
    "resend": pgettext_lazy("audit", "resent"),
    "remove": pgettext_lazy("audit", "removed"),
    "set": pgettext_lazy("audit", "set"),
    "test": pgettext_lazy("audit", "tested"),
    "disable": pgettext_lazy("audit", "disabled"),
    "enable": pgettext_lazy("audit", "enabled"),
}

# Actions whose composed label would read badly.
ACTIONS = {
    "member.role_change": gettext_lazy("Member role changed"),
    "member.teams_change": gettext_lazy("Member teams changed"),
    "member.remove": gettext_lazy("Member removed"),
    "alert_channel.rotate_secret": gettext_lazy("Alert channel secret rotated"),
    "alert_channel.test": gettext_lazy("Test alert sent"),
    "alert_channel.disable": gettext_lazy("Alert channel disabled after failures"),
    "user.verify_email": gettext_lazy("Email address verified"),
    "credit.grant": gettext_lazy("Credit granted"),
    "credit.topup": gettext_lazy("Credit topped up"),
    "credit.deduct": gettext_lazy("Credit deducted"),
    "credit.redeem": gettext_lazy("Redemption code redeemed"),
    "credit.codes_generate": gettext_lazy("Redemption codes generated"),
    "credit.policy": gettext_lazy("Credit policy changed"),
    "user.create_sso": gettext_lazy("Account created by single sign-on"),
    "member.join_sso": gettext_lazy("Member joined by single sign-on"),
    "sso.login": gettext_lazy("Signed in by single sign-on"),
    "sso.login_refused": gettext_lazy("Single sign-on refused"),
}


def action_label(action: str) -> str:
    if action in ACTIONS:
        return str(ACTIONS[action])
    subject, _dot, verb = action.partition(".")
    if subject in OBJECTS and verb in VERBS:
        return _("%(object)s %(verb)s") % {"object": OBJECTS[subject], "verb": VERBS[verb]}
    return action


def object_label(target_type: str) -> str:
    return str(OBJECTS.get(target_type, target_type))
