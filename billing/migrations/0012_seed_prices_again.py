"""Load the rows added to billing/prices_seed.json since 0003 (Qiniu, Kimi K2.7 Code).

The loader is 0003's: `get_or_create` on (provider, model, effective date), so rows already there are left
as they are and running it again adds only the new ones.
"""

import importlib

from django.db import migrations

seed = importlib.import_module("billing.migrations.0003_seed_prices")


class Migration(migrations.Migration):
    dependencies = [("billing", "0011_cache_write_price")]
    operations = [migrations.RunPython(seed.load, migrations.RunPython.noop)]
