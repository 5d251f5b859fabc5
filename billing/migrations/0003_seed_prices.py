"""Load the seeded global price book (billing/prices_seed.json)."""

import json
from decimal import Decimal
from pathlib import Path

from django.db import migrations
from django.utils.dateparse import parse_datetime

SEED = Path(__file__).resolve().parent.parent / "prices_seed.json"


def load(apps, schema_editor):
    Price = apps.get_model("billing", "Price")
    for row in json.loads(SEED.read_text())["prices"]:
        Price.objects.get_or_create(
            organization=None, provider=row["provider"], upstream_model=row["upstream_model"],
            effective_from=parse_datetime(row["effective_from"]),
            defaults={
                "currency": row["currency"],
                "input_per_m": Decimal(row["input_per_m"]),
                "cached_input_per_m": Decimal(row["cached_input_per_m"]) if row["cached_input_per_m"] is not None else None,
                "output_per_m": Decimal(row["output_per_m"]),
                "tiers": row["tiers"], "windows": row["windows"], "time_zone": row["time_zone"], "source": row["source"],
            },
        )


class Migration(migrations.Migration):
    dependencies = [("billing", "0002_ledger_prices_budgets_alerts")]
    operations = [migrations.RunPython(load, migrations.RunPython.noop)]
