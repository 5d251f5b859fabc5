# Rollups gain an endpoint column (the dashboard's breakdown by endpoint). Existing hourly and daily rows are
# split by endpoint from the ledger where the ledger still holds every request the row counted (equal request
# counts: retention only ever removes ledger rows); a row whose requests were partly pruned keeps endpoint ""
# ("not recorded"), so every total stays exactly what it was. The by-model grain is then rebuilt from the
# daily rows, as migration 0007 built it; the by-key grain keeps no endpoint.

from django.db import migrations, models

DIMS = "organization_id, bucket, team_id, key_id, user_id, model_name, deployment_id"
SUMS = "requests, errors, prompt_tokens, cached_tokens, completion_tokens, cost, unpriced, latency_ms_sum"
TOTALS = ", ".join(f"SUM({name})" for name in SUMS.split(", "))
MATCH = " AND ".join(f"s.{name} = r.{name}" for name in DIMS.split(", "))


def _ledger_split(bucket: str) -> str:
    """The ledger summed per rollup bucket (hour or UTC day) × dimensions × endpoint, as billing.rollups sums it."""
    return (
        f"SELECT organization_id, {bucket} AS bucket, COALESCE(team_id, 0) AS team_id, COALESCE(key_id, 0) AS key_id, "
        "COALESCE(user_id, 0) AS user_id, model_name, COALESCE(deployment_id, 0) AS deployment_id, endpoint, COUNT(*) AS requests, "
        "SUM(CASE WHEN status_code >= 400 THEN 1 ELSE 0 END) AS errors, SUM(prompt_tokens) AS prompt_tokens, "
        "SUM(cached_tokens) AS cached_tokens, SUM(completion_tokens) AS completion_tokens, COALESCE(SUM(cost_display), 0) AS cost, "
        "SUM(CASE WHEN cost_display IS NULL AND status_code < 400 THEN 1 ELSE 0 END) AS unpriced, SUM(latency_ms) AS latency_ms_sum "
        f"FROM billing_usageevent GROUP BY organization_id, {bucket}, COALESCE(team_id, 0), COALESCE(key_id, 0), COALESCE(user_id, 0), "
        "model_name, COALESCE(deployment_id, 0), endpoint"
    )


def split(apps, schema_editor):
    execute = schema_editor.execute
    postgres = schema_editor.connection.vendor == "postgresql"
    if postgres:
        execute("SET LOCAL statement_timeout = 0")  # a large ledger takes longer than 30 s
        buckets = {"hour": "date_trunc('hour', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'",
                   "day": "date_trunc('day', created_at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'"}
    else:  # naive UTC text, as the ORM stores the buckets
        buckets = {"hour": "strftime('%%Y-%%m-%%d %%H:00:00', created_at)", "day": "strftime('%%Y-%%m-%%d 00:00:00', created_at)"}
    for grain, bucket in buckets.items():
        execute("DROP TABLE IF EXISTS rollup_split")
        execute(f"CREATE TEMPORARY TABLE rollup_split AS {_ledger_split(bucket)}")
        # The rows the ledger still fully explains: their requests, counted again per endpoint, add up to theirs.
        complete = (f"FROM billing_usagerollup r WHERE r.grain = '{grain}' AND r.endpoint = '' AND r.requests = "
                    f"(SELECT SUM(s.requests) FROM rollup_split s WHERE {MATCH})")
        execute("DROP TABLE IF EXISTS rollup_complete")
        execute(f"CREATE TEMPORARY TABLE rollup_complete AS SELECT r.id, {', '.join('r.' + d for d in DIMS.split(', '))} {complete}")
        execute(f"INSERT INTO billing_usagerollup ({DIMS}, grain, endpoint, {SUMS}) SELECT {', '.join('s.' + d for d in DIMS.split(', '))}, "
                f"'{grain}', s.endpoint, {', '.join('s.' + n for n in SUMS.split(', '))} FROM rollup_split s "
                f"WHERE EXISTS (SELECT 1 FROM rollup_complete r WHERE {MATCH})")
        execute("DELETE FROM billing_usagerollup WHERE id IN (SELECT id FROM rollup_complete)")
    execute("DROP TABLE IF EXISTS rollup_split")
    execute("DROP TABLE IF EXISTS rollup_complete")
    execute("DELETE FROM billing_usagerollup WHERE grain = 'dm'")
    execute(f"INSERT INTO billing_usagerollup ({DIMS}, grain, endpoint, {SUMS}) SELECT organization_id, bucket, 0, 0, 0, model_name, 0, "
            f"'dm', endpoint, {TOTALS} FROM billing_usagerollup WHERE grain = 'day' GROUP BY organization_id, bucket, model_name, endpoint")


def merge(apps, schema_editor):
    """Back to one row per bucket without endpoints (the old unique constraint returns after this)."""
    execute = schema_editor.execute
    if schema_editor.connection.vendor == "postgresql":
        execute("SET CONSTRAINTS ALL IMMEDIATE")  # the next operation alters the table: no foreign key checks may wait
    execute("DROP TABLE IF EXISTS rollup_merged")
    sums = ", ".join(f"SUM({name}) AS {name}" for name in SUMS.split(", "))
    execute(f"CREATE TEMPORARY TABLE rollup_merged AS SELECT {DIMS}, grain, {sums} FROM billing_usagerollup GROUP BY {DIMS}, grain")
    execute("DELETE FROM billing_usagerollup")
    execute(f"INSERT INTO billing_usagerollup ({DIMS}, grain, endpoint, {SUMS}) SELECT {DIMS}, grain, '', {SUMS} FROM rollup_merged")
    execute("DROP TABLE rollup_merged")


class Migration(migrations.Migration):

    dependencies = [
        ('accounts', '0003_user_email_verified'),
        ('billing', '0015_rerank_search_units'),
    ]

    operations = [
        migrations.RemoveConstraint(
            model_name='usagerollup',
            name='rollup_unique_bucket',
        ),
        migrations.AddField(
            model_name='usagerollup',
            name='endpoint',
            field=models.CharField(blank=True, default='', max_length=32),
        ),
        migrations.AddConstraint(
            model_name='usagerollup',
            constraint=models.UniqueConstraint(fields=('organization', 'grain', 'bucket', 'team_id', 'key_id', 'user_id', 'model_name', 'deployment_id', 'endpoint'), name='rollup_unique_bucket'),
        ),
        migrations.RunPython(split, merge, elidable=False),
    ]
