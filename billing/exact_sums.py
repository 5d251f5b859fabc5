"""Exact money arithmetic in SQL on SQLite, the embedded default.

SQLite has no decimal type: a money column holds a REAL, and SQL's SUM and `+` add those in binary
floating point, so 8,000 ledger rows summed to 31.1331138500001 where the exact total is
31.13311385. Each stored value still converts back exactly (SQLite keeps 15 significant digits), so
these functions add the values as Decimals. PostgreSQL's numeric is exact already and uses plain SQL.

Registered on every new SQLite connection (`BillingConfig.ready`); `ExactSum` replaces `Sum` for money.
"""

from decimal import Decimal

from django.db.models import DecimalField, Sum

SUM_FUNCTION = "TOLLGATE_DECIMAL_SUM"
ADD_FUNCTION = "TOLLGATE_DECIMAL_ADD"


def as_decimal(value) -> Decimal:
    """A stored SQLite value as the decimal it was written as: a float's shortest repr recovers it."""
    return Decimal(repr(value)) if isinstance(value, float) else Decimal(value)


class _DecimalSum:
    def __init__(self):
        self.total = None

    def step(self, value):
        if value is not None:
            self.total = as_decimal(value) + (self.total or 0)

    def finalize(self):
        # A float, because Django's SQLite converter reads money as one (rounded to 15 digits, so exact).
        return None if self.total is None else float(self.total)


def _decimal_add(left, right):
    if left is None or right is None:
        return None
    return str(as_decimal(left) + as_decimal(right))  # stored back through the column's numeric affinity


def register(sender, connection, **kwargs) -> None:
    """`connection_created` receiver: teach each new SQLite connection the exact functions."""
    if connection.vendor == "sqlite":
        connection.connection.create_aggregate(SUM_FUNCTION, 1, _DecimalSum)
        connection.connection.create_function(ADD_FUNCTION, 2, _decimal_add, deterministic=True)


class ExactSum(Sum):
    """`Sum` that adds money exactly on SQLite too; any other column sums as `Sum` does."""

    def as_sqlite(self, compiler, connection, **extra_context):
        if isinstance(self.output_field, DecimalField):
            extra_context["function"] = SUM_FUNCTION
        return super().as_sqlite(compiler, connection, **extra_context)


def add_sql(connection, left: str, right: str) -> str:
    """SQL for left + right on money columns, exact on every database."""
    return f"{ADD_FUNCTION}({left}, {right})" if connection.vendor == "sqlite" else f"{left} + {right}"
