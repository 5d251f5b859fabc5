"""Credits: prepaid balances in the org's currency, kept as a ledger of entries (README "Credits").

A balance is the sum of its account's entries. Credit that came in (grants, top-ups, redemptions) is
held in lots (`remaining`), spent soonest-expiring first, so the expiry of granted credit takes only
what is left of that grant. The relay enforces a balance from a lease counter of spend against the
account's `funded` total (everything but usage draws): see relay/credits.py.
"""

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from accounts.models import Organization

MONEY = {"max_digits": 20, "decimal_places": 6}


class CreditPolicy(models.Model):
    """An organization's grants: to each new member, and to both sides of an accepted invitation."""

    organization = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="credit_policy")
    signup_amount = models.DecimalField(_("sign-up grant"), default=0, **MONEY)
    inviter_amount = models.DecimalField(_("grant to the inviter"), default=0, **MONEY)
    invitee_amount = models.DecimalField(_("grant to the invited member"), default=0, **MONEY)
    inviter_cap = models.PositiveIntegerField(_("invite grants per inviter at most"), null=True, blank=True)
    grant_expiry_days = models.PositiveIntegerField(_("granted credit expires after (days)"), null=True, blank=True)
    low_balance = models.DecimalField(_("low-balance alert below"), null=True, blank=True, **MONEY)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"credit policy of {self.organization}"


class CreditAccount(models.Model):
    """One balance: of a member (user), a team or a key. A request draws from its key's own account,
    else its user's, else its team's: the most specific that exists (never from two)."""

    class Scope(models.TextChoices):
        USER = "user", _("member")
        TEAM = "team", _("team")
        KEY = "key", _("key")

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="credit_accounts")
    scope = models.CharField(max_length=8, choices=Scope.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    team = models.ForeignKey("accounts.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    key = models.ForeignKey("keys.VirtualKey", null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    # Usage drawn beyond every lot (the overspend bound, or a deduction): new credit pays it first.
    debt = models.DecimalField(default=0, **MONEY)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["organization", "user"], condition=models.Q(scope="user"), name="credit_account_user"),
            models.UniqueConstraint(fields=["organization", "team"], condition=models.Q(scope="team"), name="credit_account_team"),
            models.UniqueConstraint(fields=["organization", "key"], condition=models.Q(scope="key"), name="credit_account_key"),
        ]

    def __str__(self):
        return f"{self.get_scope_display()} {self.holder}"

    @property
    def holder(self) -> str:
        return str(self.user if self.scope == self.Scope.USER else self.team if self.scope == self.Scope.TEAM else self.key)


class CreditEntry(models.Model):
    """One movement of a balance; `amount` is signed (credit in > 0, out < 0)."""

    class Kind(models.TextChoices):
        SIGNUP = "signup", _("sign-up grant")
        INVITER = "inviter", _("invitation grant (inviter)")
        INVITEE = "invitee", _("invitation grant (invited)")
        TOPUP = "topup", _("top-up")
        DEDUCTION = "deduction", _("deduction")
        REDEMPTION = "redemption", _("redemption code")
        USAGE = "usage", _("usage")
        EXPIRY = "expiry", _("expiry")

    GRANTS = (Kind.SIGNUP, Kind.INVITER, Kind.INVITEE)

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="credit_entries")
    account = models.ForeignKey(CreditAccount, on_delete=models.CASCADE, related_name="entries")
    kind = models.CharField(max_length=12, choices=Kind.choices)
    amount = models.DecimalField(**MONEY)
    # A lot (amount > 0): what is still unspent, and when it expires (granted credit only).
    remaining = models.DecimalField(default=0, **MONEY)
    expires_at = models.DateTimeField(null=True, blank=True)
    # What caused it, unique per organization, so a grant or a redemption is applied once however often
    # it is retried ("signup:<user>", "invite:<invitation>:inviter", "code:<code>", "expiry:<lot>").
    source = models.CharField(max_length=64, blank=True)
    reason = models.CharField(max_length=300, blank=True)
    actor = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    requests = models.PositiveIntegerField(default=0)  # usage draws: how many requests
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "source"], condition=~models.Q(source=""), name="credit_entry_source_once"),
        ]
        indexes = [
            models.Index(fields=["account", "-created_at"], name="credit_entry_account_time"),
            models.Index(fields=["expires_at"], condition=models.Q(remaining__gt=0, expires_at__isnull=False), name="credit_lot_expiring"),
        ]

    def __str__(self):
        return f"{self.get_kind_display()} {self.amount}"


class RedemptionCode(models.Model):
    """A single-use code worth `amount`; only a keyed hash of it is stored (the code is shown once)."""

    organization = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="redemption_codes")
    batch = models.CharField(max_length=32)  # codes generated together share it (their CSV export)
    prefix = models.CharField(max_length=16)  # visible, to tell codes apart in lists
    code_hash = models.CharField(max_length=64, unique=True)
    amount = models.DecimalField(**MONEY)
    expires_at = models.DateTimeField()
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    redeemed_at = models.DateTimeField(null=True, blank=True)
    redeemed_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self):
        return f"{self.prefix}…"
