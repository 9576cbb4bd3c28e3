"""HZ-014-01: a bad row found on Spark fails the job with a message that reaches Spark's logs
(driver and executor logs, kept by the cluster): it names the problem, never the patient or row.
(The whole path, a Spark job failing on a bad row, is tested in tests/spark/test_spark_grade.py.)
"""

from __future__ import annotations

from cart_cytopenia.errors import InputError, Location, Problem
from cart_cytopenia.spark.grading import INPUT_ERROR, _without_patients, input_error_message


def test_the_message_for_spark_logs_names_no_patient() -> None:
    exc = InputError(
        "labs: 2 bad row(s); nothing was loaded",
        [
            Problem("unknown analyte 'ANC x'", Location(patient_id="MRN-0042", row=7, field="x")),
            Problem("labs rows for patient 'MRN-0099', who is not in the patient table",
                    Location(patient_id="MRN-0099")),
        ],
    )  # fmt: skip
    text = _without_patients(exc)
    assert "MRN-0042" not in text and "MRN-0099" not in text and "row 7" not in text
    assert "unknown analyte 'ANC x'" in text and "--engine local" in text
    # the driver finds it inside Spark's exception text and shows it as one line
    wrapped = f"PythonException: Traceback ...\nRuntimeError: {INPUT_ERROR}{text}\n  at ..."
    assert input_error_message(RuntimeError(wrapped)) == text
