"""Forms of the credit pages; values are checked again by the services, whose refusals name the field."""

from datetime import timedelta

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from accounts.models import Team, User
from keys.models import VirtualKey


class RedeemForm(forms.Form):
    code = forms.CharField(label=_("Redemption code"), max_length=64, widget=forms.TextInput(attrs={"autocomplete": "off", "spellcheck": "false"}))


class CreditPolicyForm(forms.Form):
    signup_amount = forms.CharField(label=_("Sign-up grant"), required=False, help_text=_("Given once to each new member. 0 or empty: none."))
    invitee_amount = forms.CharField(label=_("Grant to the invited member"), required=False)
    inviter_amount = forms.CharField(label=_("Grant to the inviter"), required=False, help_text=_("Per accepted invitation."))
    inviter_cap = forms.CharField(label=_("Invitation grants per inviter at most"), required=False, help_text=_("Empty: no limit."))
    grant_expiry_days = forms.CharField(label=_("Granted credit expires after (days)"), required=False, help_text=_("Empty: never."))
    low_balance = forms.CharField(label=_("Alert when a balance falls below"), required=False, help_text=_("Through the alert channels. Empty: no alert."))

    @classmethod
    def for_policy(cls, policy, data=None):
        def text(value):
            return "" if value is None else f"{value.normalize():f}" if hasattr(value, "normalize") else str(value)

        initial = {name: text(getattr(policy, name)) for name in cls.base_fields}
        return cls(data, initial=initial, prefix="policy")


class CreditAdjustForm(forms.Form):
    holder = forms.ChoiceField(label=_("Balance of"))
    action = forms.ChoiceField(label=_("Action"), choices=[("topup", _("Top up")), ("deduct", _("Deduct"))])
    amount = forms.CharField(label=_("Amount"))
    reason = forms.CharField(label=_("Reason"), max_length=300)

    def __init__(self, *args, organization, **kwargs):
        kwargs.setdefault("prefix", "adjust")
        super().__init__(*args, **kwargs)
        users = User.objects.filter(memberships__organization=organization).order_by("email")
        teams = Team.objects.filter(organization=organization).order_by("name")
        keys = VirtualKey.objects.filter(organization=organization, revoked_at=None).order_by("name")
        self.fields["holder"].choices = [
            (_("Members"), [(f"user:{u.pk}", u.email) for u in users]),
            (_("Teams"), [(f"team:{t.pk}", t.name) for t in teams]),
            (_("Keys"), [(f"key:{k.pk}", f"{k.name} ({k.prefix}…)") for k in keys]),
        ]
        self._holders = {f"user:{u.pk}": ("user", u) for u in users} | {f"team:{t.pk}": ("team", t) for t in teams} | {f"key:{k.pk}": ("key", k) for k in keys}

    def holder_kwargs(self) -> dict:
        scope, obj = self._holders[self.cleaned_data["holder"]]
        return {scope: obj}


class CodeGenerateForm(forms.Form):
    count = forms.IntegerField(label=_("Number of codes"), min_value=1, max_value=10_000, initial=10)
    amount = forms.CharField(label=_("Amount per code"))
    expires_at = forms.DateTimeField(label=_("Redeemable until"), widget=forms.DateTimeInput(attrs={"type": "datetime-local"}, format="%Y-%m-%dT%H:%M"))

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("prefix", "codes")
        super().__init__(*args, **kwargs)
        self.fields["expires_at"].initial = (timezone.localtime() + timedelta(days=30)).strftime("%Y-%m-%dT%H:%M")
