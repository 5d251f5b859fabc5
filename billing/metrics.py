"""The ledger's Prometheus metrics, written by whichever worker ingests (multiprocess files, added up by
any web process's /metrics: README "Metrics")."""

from prometheus_client import Counter

INGESTED = Counter("tollgate_ledger_records_ingested", "Usage records newly written to the ledger (the drain's throughput).")
DEAD_LETTERS = Counter("tollgate_usage_dead_letters", "Usage records the ledger refused, parked in UsageDeadLetter.")
