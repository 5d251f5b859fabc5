"""Dashboard forms: they check input shape only; the rules live in accounts.services."""

from django import forms
from django.conf import settings
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm
from django.contrib.auth.password_validation import password_validators_help_text_html, validate_password
from django.utils.translation import gettext_lazy as _

from accounts import signup, throttle
from accounts.client import client_address
from accounts.errors import ApplicationError
from accounts.models import TIME_ZONE_CHOICES, Organization, Role, Team, User, currency_validator
from accounts.permissions import ROLE_RANK, Perm


def add_service_error(form: forms.Form, exc: ApplicationError) -> None:
    """Show a service's refusal on the field it names, or above the form when the field is not on it."""
    form.add_error(exc.field if exc.field in form.fields else None, exc.message)


def service_error(form: forms.Form, exc: ApplicationError) -> None:
    """`add_service_error`, and remember the status: a refusal by role is a 403 page, a bad value a 400."""
    add_service_error(form, exc)
    form.service_status = exc.status


def form_status(form) -> int:
    """The status of a page re-rendered with form errors: the service's refusal's, else 400."""
    return getattr(form, "service_status", 400)


class PasswordPairMixin:
    """Two password fields that must match and pass AUTH_PASSWORD_VALIDATORS for `password_user()`."""

    def password_user(self) -> User:
        raise NotImplementedError

    def clean(self):
        cleaned = super().clean()
        password1, password2 = cleaned.get("password1"), cleaned.get("password2")
        if password1 and password2:
            if password1 != password2:
                self.add_error("password2", _("The two passwords do not match."))
            else:
                try:
                    validate_password(password1, user=self.password_user())
                except forms.ValidationError as exc:
                    self.add_error("password1", exc)
        return cleaned


def _password_fields():
    return (
        forms.CharField(
            label=_("Password"),
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
            help_text=password_validators_help_text_html(),
        ),
        forms.CharField(
            label=_("Password (again)"),
            strip=False,
            widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
        ),
    )


class SignupForm(PasswordPairMixin, forms.Form):
    email = forms.EmailField(label=_("Email"), widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))
    name = forms.CharField(label=_("Your name"), max_length=150, required=False, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password1, password2 = _password_fields()
    organization_name = forms.CharField(label=_("Organization name"), max_length=120)

    def password_user(self) -> User:
        return User(email=self.cleaned_data.get("email", ""), name=self.cleaned_data.get("name", ""))


class InvitationSignupForm(PasswordPairMixin, forms.Form):
    """Account creation from an invitation: the email is the invitation's, not the visitor's choice."""

    name = forms.CharField(label=_("Your name"), max_length=150, required=False, widget=forms.TextInput(attrs={"autocomplete": "name"}))
    password1, password2 = _password_fields()

    def __init__(self, *args, email: str, **kwargs):
        super().__init__(*args, **kwargs)
        self.email = email

    def password_user(self) -> User:
        return User(email=self.email, name=self.cleaned_data.get("name", ""))


class ThrottledLoginMixin:
    """Refuse while the address or the email is throttled (accounts.throttle); count failed logins."""

    def clean(self):
        address, email = client_address(self.request), self.cleaned_data.get("username")
        wait = throttle.blocked_for(address=address, email=email)
        if wait:
            raise forms.ValidationError(
                _("Too many failed login attempts. Wait %(minutes)s minutes and try again.") % {"minutes": (wait + 59) // 60},
                code="throttled",
            )
        try:
            return super().clean()
        except forms.ValidationError as exc:
            if exc.code == "invalid_login":
                throttle.failed(address=address, email=email)
            raise


class EmailAuthenticationForm(ThrottledLoginMixin, AuthenticationForm):
    """Django's login form, asking for the email (stored lower-case, so matched lower-case)."""

    username = forms.EmailField(label=_("Email"), widget=forms.EmailInput(attrs={"autocomplete": "email", "autofocus": True}))

    def clean_username(self):
        return self.cleaned_data["username"].strip().lower()

    def confirm_login_allowed(self, user):
        """An open sign-up logs in only once its email is confirmed; the right password earns a fresh link."""
        super().confirm_login_allowed(user)
        if not user.email_verified:
            signup.send_verification(user)
            raise forms.ValidationError(
                _("Confirm your email address first: we have sent the link to %(email)s again.") % {"email": user.email},
                code="unverified",
            )


class AdminLoginForm(ThrottledLoginMixin, AdminAuthenticationForm):
    """The admin site's login, throttled like the dashboard's (it checks the same passwords)."""


class OrganizationCreateForm(forms.Form):
    name = forms.CharField(label=_("Organization name"), max_length=120)


class OrganizationForm(forms.Form):
    name = forms.CharField(label=_("Name"), max_length=120)
    time_zone = forms.ChoiceField(label=_("Time zone"), choices=TIME_ZONE_CHOICES, help_text=_("Budgets and daily charts follow this time zone."))
    currency = forms.CharField(
        label=_("Display currency"), min_length=3, max_length=3,
        help_text=_("A three-letter ISO 4217 code, e.g. USD or CNY."),
    )

    language = forms.ChoiceField(
        label=_("Alert language"), choices=settings.LANGUAGES, required=False,
        help_text=_("Alert emails, webhook summaries and bot messages are written in this language."),
    )

    def clean_language(self):
        return self.cleaned_data["language"] or None  # not sent: unchanged

    def clean_currency(self):
        currency = self.cleaned_data["currency"].upper()
        currency_validator(currency)  # after upper-casing, so "cny" is accepted as CNY
        return currency

    @classmethod
    def for_organization(cls, org: Organization, data=None):
        return cls(data, initial={"name": org.name, "time_zone": org.time_zone, "currency": org.currency, "language": org.language})


def assignable_roles(org_context) -> list[tuple[str, str]]:
    """The roles the current user may hand out: never above their own, owner only by an owner."""
    return [
        (value, label)
        for value, label in Role.choices
        if ROLE_RANK[value] <= ROLE_RANK[org_context.role]
        and (value != Role.OWNER or org_context.can(Perm.MANAGE_OWNERS))
    ]


class InvitationForm(forms.Form):
    email = forms.EmailField(label=_("Email"))
    role = forms.ChoiceField(label=_("Role"), initial=Role.MEMBER)
    team = forms.ModelChoiceField(label=_("Team"), queryset=Team.objects.none(), required=False, empty_label=_("No team"))

    def __init__(self, *args, org_context, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = assignable_roles(org_context)
        self.fields["team"].queryset = Team.objects.filter(organization=org_context.organization)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(label=_("Role"))

    def __init__(self, *args, org_context, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = assignable_roles(org_context)


class MemberTeamsForm(forms.Form):
    teams = forms.ModelMultipleChoiceField(
        label=_("Teams"), queryset=Team.objects.none(), required=False, widget=forms.CheckboxSelectMultiple
    )

    def __init__(self, *args, organization: Organization, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["teams"].queryset = Team.objects.filter(organization=organization)


class TeamForm(forms.Form):
    name = forms.CharField(label=_("Team name"), max_length=120)


class ApiTokenForm(forms.Form):
    """A new org API token: a name, and a role no higher than the creator's (never owner)."""

    name = forms.CharField(label=_("Name"), max_length=120, help_text=_("What uses it, e.g. the billing export job."))
    role = forms.ChoiceField(label=_("Role"), initial=Role.VIEWER, help_text=_("What the token may do, as a member of this role."))

    def __init__(self, *args, org_context, **kwargs):
        kwargs.setdefault("prefix", "token")
        super().__init__(*args, **kwargs)
        self.fields["role"].choices = [(value, label) for value, label in assignable_roles(org_context) if value != Role.OWNER]
