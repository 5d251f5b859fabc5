# The overview's month read a daily rollup row per key × model × deployment (~138,000 rows at 10M usage
# events a quarter); two coarser daily grains make it a few thousand. They are built here from the daily
# rows (the truth for whole days), replacing any a new drain wrote before this migration ran.

from django.db import migrations, models

SUMS = "requests, errors, prompt_tokens, cached_tokens, completion_tokens, cost, unpriced, latency_ms_sum"
TOTALS = ", ".join(f"SUM({name})" for name in SUMS.split(", "))
COLUMNS = f"organization_id, grain, bucket, team_id, key_id, user_id, model_name, deployment_id, {SUMS}"


def build(apps, schema_editor):
    table = schema_editor.quote_name("billing_usagerollup")
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET LOCAL statement_timeout = 0")  # a large ledger takes longer than 30 s
    schema_editor.execute(f"DELETE FROM {table} WHERE grain IN ('dm', 'dk')")
    schema_editor.execute(
        f"INSERT INTO {table} ({COLUMNS}) SELECT organization_id, 'dm', bucket, 0, 0, 0, model_name, 0, {TOTALS} "
        f"FROM {table} WHERE grain = 'day' GROUP BY organization_id, bucket, model_name"
    )
    schema_editor.execute(
        f"INSERT INTO {table} ({COLUMNS}) SELECT organization_id, 'dk', bucket, team_id, key_id, user_id, '', 0, {TOTALS} "
        f"FROM {table} WHERE grain = 'day' GROUP BY organization_id, bucket, team_id, key_id, user_id"
    )


def drop(apps, schema_editor):
    schema_editor.execute(f"DELETE FROM {schema_editor.quote_name('billing_usagerollup')} WHERE grain IN ('dm', 'dk')")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0006_ledger_insert_indexes'),
    ]

    operations = [
        migrations.AlterField(
            model_name='usagerollup',
            name='grain',
            field=models.CharField(choices=[('hour', 'Hour'), ('day', 'Day'), ('dm', 'Day by model'), ('dk', 'Day by key')], max_length=4),
        ),
        migrations.RunPython(build, drop, elidable=False),
    ]
