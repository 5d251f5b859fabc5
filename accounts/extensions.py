"""What a higher floor does when someone joins an organization (billing: the credit grants).

Floors: accounts is the ground, so it cannot import billing. `invitation_accept` (and any other way in,
such as single sign-on) calls `member_joined` inside its transaction; billing registers its listener when
Django starts (`billing.apps.BillingConfig.ready`). A listener that raises rolls the joining back.
"""

from collections.abc import Callable

_listeners: list[Callable] = []


def on_member_joined(listener: Callable) -> None:
    """`listener(*, membership, created, invitation)`: `created` is False when the user was a member already."""
    if listener not in _listeners:
        _listeners.append(listener)


def member_joined(*, membership, created: bool, invitation=None) -> None:
    for listener in _listeners:
        listener(membership=membership, created=created, invitation=invitation)
