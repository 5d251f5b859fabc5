"""Money as the pages print it: an amount in a currency, rendered for the active locale."""

from decimal import ROUND_HALF_UP, Decimal

from django.utils import formats
from django.utils.translation import gettext as _

CURRENCY_SYMBOLS = {"USD": "$", "CNY": "¥", "EUR": "€", "GBP": "£", "JPY": "¥", "HKD": "HK$", "KRW": "₩", "INR": "₹"}
_SMALLEST = Decimal("0.000001")


class Money:
    """An amount in a currency, rendered for the active locale with 2 to 6 decimals.

    Amounts of 1 or more get 2 decimals; smaller ones as many as they need (up to 6), so that a
    request costing 0.00042 does not show as 0.00. Rendered where it is printed (`str()`), so the
    language of the request applies.
    """

    __slots__ = ("amount", "currency")

    def __init__(self, amount, currency: str):
        self.amount = Decimal(amount) if amount is not None else None
        self.currency = currency

    def __str__(self) -> str:
        if self.amount is None:
            return _("unpriced")
        amount = self.amount
        if amount and abs(amount) < _SMALLEST:
            return "< " + self._with_symbol(formats.number_format(_SMALLEST, 6, use_l10n=True, force_grouping=True))
        places = 2 if not amount or abs(amount) >= 1 else (4 if abs(amount) >= Decimal("0.01") else 6)
        rounded = amount.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        decimals = max(2, -rounded.normalize().as_tuple().exponent) if rounded else 2
        return self._with_symbol(formats.number_format(rounded, min(decimals, places), use_l10n=True, force_grouping=True))

    def __eq__(self, other):
        return isinstance(other, Money) and (self.amount, self.currency) == (other.amount, other.currency)

    def __hash__(self):
        return hash((self.amount, self.currency))

    def __repr__(self):
        return f"Money({self.amount!r}, {self.currency!r})"

    def _with_symbol(self, number: str) -> str:
        negative = number.startswith("-")
        number = number.lstrip("-")
        symbol = CURRENCY_SYMBOLS.get(self.currency)
        text = f"{symbol}{number}" if symbol else f"{number} {self.currency}"
        return f"-{text}" if negative else text


def chart_number(amount) -> float:
    """A cost for Chart.js (a float is fine for drawing; tables keep the Decimal)."""
    return float(Decimal(amount or 0).quantize(Decimal("0.000001")))
