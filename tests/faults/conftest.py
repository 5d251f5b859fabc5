"""Fault tests pause Redis, restart PostgreSQL and kill workers: they run alone (`make test` runs
the `serial` marker after the parallel workers have finished)."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config, items):
    for item in items:
        if Path(str(item.fspath)).parent == HERE:
            item.add_marker(pytest.mark.serial)
