"""Fault tests pause Redis, restart PostgreSQL and kill workers: they run alone (`make test` runs
the `serial` marker after the parallel workers have finished), the PostgreSQL restart last."""

from pathlib import Path

import pytest
from django.db import connections

HERE = Path(__file__).parent
LAST = "test_postgres_restart.py"


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.serial)
    items.sort(key=lambda item: Path(str(item.fspath)).name == LAST)  # stable: everything else keeps its order


@pytest.fixture(autouse=True)
def _fresh_database_connections():
    """A fault may leave this process's connections broken; the next test starts with new ones."""
    yield
    connections.close_all()
