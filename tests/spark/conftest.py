"""One Spark local[2] session for the Spark tests (started once: a JVM takes seconds).

The tests are marked ``spark`` and skipped, with the reason, only when no Java runtime is found;
PySpark itself is installed by ``make setup`` (the ``spark`` extra)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from cart_cytopenia.cohort import synthetic
from cart_cytopenia.spark.session import java_available


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.spark)
            if not java_available():
                item.add_marker(
                    pytest.mark.skip(reason="no Java runtime (JAVA_HOME or java on PATH)")
                )


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    from cart_cytopenia.spark.session import session

    s = session("local[2]", app_name="cart-cytopenia-tests")
    s.conf.set("spark.sql.shuffle.partitions", "4")
    yield s
    s.stop()


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic cohort as the generator writes it (Parquet, dated patient columns)."""
    d = tmp_path_factory.mktemp("spark-cohort")
    synthetic.write_cohort(d, 400, seed=5)
    return d
