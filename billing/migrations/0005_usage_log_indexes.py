# The dashboard at millions of usage rows (benchmarks/pages.py).
# - The request log reads an index in time order (newest first, LIMIT 51) under every filter the usage explorer
#   offers, so a filter matching few rows never walks the whole range; errors have a partial index of their own.
# - A member's pages read their own keys' rollups through an index rather than the whole organization's.
# - PostgreSQL estimated ~117,000 groups for a month of rollups grouped by model, key, team and user (there are a
#   few thousand: key decides team and user), so it sorted on disk instead of hashing in memory (146 ms against
#   50 ms at 10M events); extended statistics give it the real number of distinct combinations.

from django.db import migrations, models

STATISTICS = "rollup_dimensions"


def no_statement_timeout(apps, schema_editor):
    """Building these indexes on a large ledger takes longer than the 30 s every query is otherwise allowed
    (config/settings.py); SET LOCAL ends with this migration's transaction."""
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("SET LOCAL statement_timeout = 0")


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (ndistinct) ON model_name, key_id, team_id, user_id FROM billing_usagerollup"
        )
        schema_editor.execute("ANALYZE billing_usagerollup")  # else the statistics wait for the next autovacuum


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_attempt_trail'),
    ]

    operations = [
        migrations.RunPython(no_statement_timeout, migrations.RunPython.noop, elidable=False),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(fields=['organization', 'key_id', '-created_at'], name='usage_org_key_time'),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(fields=['organization', 'model_name', '-created_at'], name='usage_org_model_time'),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(fields=['organization', 'team_id', '-created_at'], name='usage_org_team_time'),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(fields=['organization', 'user_id', '-created_at'], name='usage_org_user_time'),
        ),
        migrations.AddIndex(
            model_name='usageevent',
            index=models.Index(
                condition=models.Q(status_code__gte=400), fields=['organization', '-created_at'], name='usage_org_errors_time',
            ),
        ),
        migrations.AddIndex(
            model_name='usagerollup',
            index=models.Index(fields=['organization', 'key_id', 'grain', 'bucket'], name='rollup_org_key_bucket'),
        ),
        migrations.RunPython(create_statistics, drop_statistics, elidable=False),
    ]
