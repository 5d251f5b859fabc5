# The dashboard at millions of usage rows (benchmarks/pages.py).
# - The request log reads an index in time order (newest first, LIMIT 51) under every filter the usage explorer
#   offers, so a filter matching few rows never walks the whole range; errors have a partial index of their own.
# - A member's pages read their own keys' rollups through an index rather than the whole organization's.
# - PostgreSQL estimated ~117,000 groups for a month of rollups grouped by model, key, team and user (there are a
#   few thousand: key decides team and user), so it sorted on disk instead of hashing in memory (146 ms against
#   50 ms at 10M events); extended statistics give it the real number of distinct combinations.

from django.db import migrations, models

STATISTICS = "rollup_dimensions"


def create_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f"CREATE STATISTICS IF NOT EXISTS {STATISTICS} (ndistinct) ON model_name, key_id, team_id, user_id FROM billing_usagerollup"
        )


def drop_statistics(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP STATISTICS IF EXISTS {STATISTICS}")


class Migration(migrations.Migration):

    dependencies = [
        ('billing', '0004_attempt_trail'),
    ]

    operations = [
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
