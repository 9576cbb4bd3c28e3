"""cart-cytopenia on Apache Spark (the ``spark`` extra: ``pip install 'cart-cytopenia[spark]'``).

``grade(spark, labs, patients, events=None, settings=None, as_of=None)`` returns the grade table
of ``cart-cytopenia grade`` as a Spark DataFrame, computed by the existing engine on groups of
patients (``cart_cytopenia.spark.grading``); ``session`` starts a session whose executors run
this interpreter. docs/scale-out.md says how to run it on a cluster.
"""

from __future__ import annotations

from cart_cytopenia.spark.grading import grade, spark_schema
from cart_cytopenia.spark.session import session

__all__ = ["grade", "session", "spark_schema"]
