"""The Spark session the project starts: its executors run this interpreter (``PYSPARK_PYTHON``).

PySpark starts its Python workers with ``PYSPARK_PYTHON`` (default: ``python3`` on the PATH),
which on a developer's machine or in CI is not the virtual environment that has cart-cytopenia
installed: the workers could not import the engine. ``session`` sets it to the running
interpreter unless the caller set it already (a cluster whose executors use another Python,
see docs/scale-out.md), before the JVM starts.
"""

from __future__ import annotations

import os
import shutil
import sys
from typing import TYPE_CHECKING

from cart_cytopenia.errors import InputError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "PySpark is not installed: pip install 'cart-cytopenia[spark]'"


def java_available() -> bool:
    """A Java runtime Spark can start (JAVA_HOME or java on the PATH)."""
    home = os.environ.get("JAVA_HOME")
    if home and os.path.exists(os.path.join(home, "bin", "java")):
        return True
    return shutil.which("java") is not None


def use_this_python() -> None:
    """Executors and the driver run the interpreter that runs this code, unless set already."""
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)


def session(master: str = "local[*]", app_name: str = "cart-cytopenia") -> SparkSession:
    """A Spark session on ``master`` (``local[*]``, ``spark://host:7077``, ``yarn`` ...), or the
    active one when it exists (``spark-submit`` made it)."""
    try:
        from pyspark.sql import SparkSession
    except ImportError:
        raise InputError(INSTALL_HINT) from None
    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    if not java_available():
        raise InputError("Spark needs a Java runtime (17 or 21): set JAVA_HOME or put java on PATH")
    use_this_python()
    return (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.sql.session.timeZone", "UTC")
        .getOrCreate()
    )
