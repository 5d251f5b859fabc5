"""Dashboard forms for single sign-on: input shape only; sso.services holds the rules."""

from django import forms
from django.utils.translation import gettext_lazy as _

from accounts.forms import EmailAuthenticationForm
from accounts.models import Role
from sso import kinds, selectors
from sso.services import JOINABLE_ROLES


class SsoAwareLoginForm(EmailAuthenticationForm):
    """The dashboard login, refusing a password where the user's organization requires single sign-on."""

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        connection = selectors.password_login_refusal(user)
        if connection is not None:
            self.sso_connection = connection
            raise forms.ValidationError(
                _("%(org)s requires single sign-on: use “Sign in with %(provider)s” below.")
                % {"org": connection.organization.name, "provider": connection.button_name},
                code="sso_required",
            )


class SsoConnectionForm(forms.Form):
    kind = forms.ChoiceField(label=_("Provider"), choices=kinds.CHOICES)
    display_name = forms.CharField(
        label=_("Button name"), max_length=60, required=False,
        help_text=_("Shown as “Sign in with …”, e.g. Okta. Empty: the provider's name."),
    )
    client_id = forms.CharField(
        label=_("Client ID"), max_length=200,
        help_text=_("OpenID Connect: the client ID; Feishu/Lark: the App ID; DingTalk: the Client ID (AppKey); WeCom: the CorpID."),
    )
    client_secret = forms.CharField(
        label=_("Client secret"), required=False, strip=True,
        widget=forms.PasswordInput(render_value=False, attrs={"autocomplete": "off"}),
    )
    issuer_url = forms.URLField(
        label=_("Issuer URL"), required=False, max_length=500, assume_scheme="https",
        help_text=_("OpenID Connect only, e.g. https://login.example.com/realms/acme; discovery is read from /.well-known/openid-configuration under it."),
    )
    agent_id = forms.CharField(label=_("Agent ID"), required=False, max_length=40, help_text=_("WeCom only: the application's AgentId."))
    allowed_domains = forms.CharField(
        label=_("Allowed email domains"), required=False,
        help_text=_("Comma-separated, e.g. example.com, example.cn. Empty: any address the provider vouches for."),
    )
    default_role = forms.ChoiceField(label=_("Role of new members"), initial=Role.MEMBER)
    auto_join = forms.BooleanField(label=_("Join on first sign-in"), required=False, initial=True)
    require_sso = forms.BooleanField(
        label=_("Require single sign-on"), required=False,
        help_text=_("Members and admins can no longer log in with a password; owners still can, as the way back in if the provider fails."),
    )
    enabled = forms.BooleanField(label=_("Enabled"), required=False, initial=True)

    def __init__(self, *args, connection=None, **kwargs):
        if connection is not None:
            kwargs.setdefault("initial", {
                "kind": connection.kind, "display_name": connection.display_name, "client_id": connection.client_id,
                "issuer_url": connection.issuer_url, "agent_id": connection.agent_id,
                "allowed_domains": ", ".join(connection.allowed_domains), "default_role": connection.default_role,
                "auto_join": connection.auto_join, "require_sso": connection.require_sso, "enabled": connection.enabled,
            })
        super().__init__(*args, **kwargs)
        self.fields["default_role"].choices = [(value, label) for value, label in Role.choices if value in JOINABLE_ROLES]
        if connection is not None and connection.client_secret_encrypted:
            self.fields["client_secret"].help_text = _("Stored encrypted and never shown. Leave blank to keep it (…%(hint)s).") % {"hint": connection.client_secret_hint}
        else:
            self.fields["client_secret"].help_text = _("Stored encrypted and never shown again.")
