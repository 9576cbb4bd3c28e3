"""Fuzzing the command line (issue 15): mutated course JSON, lab and patient CSV and FHIR Bundles
fed to `assess`, `grade` and `import fhir` give either their output or one clear error (exit 2,
one message, no traceback, nothing written). Bounded examples keep `make test` quick; a failure
prints the mutated input (Hypothesis shrinks it first)."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from cart_cytopenia.domain.course import parse_course
from cart_cytopenia.io.fhir_export import course_to_bundle
from tests.cli.invoke import Result, invoke
from tests.conftest import course_dict

FUZZ = settings(
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

# --------------------------------------------------------------------------- base inputs


def base_course() -> dict[str, Any]:
    doc = course_dict([(d, v) for d, v in ((-6, 900), (0, 800), (3, 90), (7, 40), (14, 700))])
    doc["labs"] += [
        {"date": "2024-01-20", "analyte": "platelets", "value": 35, "unit": "10*3/uL"},
        {"day": 10, "analyte": "hb", "value": 7.9, "unit": "g/dL", "comparator": "<"},
    ]
    doc["baseline_labs"] = [{"analyte": "crp", "value": 3.1, "unit": "mg/dL"}]
    doc["events"] = [
        {"type": "crs", "start_day": 1, "end_day": 4, "max_grade": 2},
        {"type": "medication", "drug": "filgrastim", "start_day": 8, "end_day": 12},
        {"type": "transfusion", "day": 9, "product": "platelets", "units": 1},
    ]
    doc["patient"]["prior_hct"] = [{"kind": "autologous", "day": -400}]
    doc["last_followup_day"] = 30
    return doc


LABS_CSV = [
    ["patient_id", "day", "analyte", "value", "unit"],
    ["p1", "0", "anc", "800", "/uL"],
    ["p1", "7", "anc", "40", "/uL"],
    ["p1", "14", "platelets", "35", "10*3/uL"],
    ["p2", "3", "ANC", "0.09", "10^9/L"],
    ["p2", "21", "hb", "8.1", "g/dL"],
]
PATIENTS_CSV = [
    ["patient_id", "infusion_date", "age_years", "disease", "product", "prior_allo_hct"],
    ["p1", "2024-01-10", "61", "LBCL", "axi-cel", "no"],
    ["p2", "2024-02-01", "55.5", "MM", "cilta-cel", "yes"],
]
EVENTS_CSV = [
    ["patient_id", "type", "start_day", "end_day", "grade", "drug", "product"],
    ["p1", "crs", "1", "4", "2", "", ""],
    ["p1", "medication", "8", "12", "", "filgrastim", ""],
    ["p2", "transfusion", "9", "", "1", "", "platelets"],
]

# --------------------------------------------------------------------------- mutations

ODD_TEXT = st.sampled_from(
    [
        "",
        " ",
        "abc",
        "-1",
        "-3",
        "0",
        "1e400",
        "nan",
        "NaN",
        "inf",
        "-inf",
        "true",
        "maybe",
        "2024-13-45",
        "2024-02-30",
        "99999999999",
        "1,5",
        "<0.1",
        '"',
        "\ufeff",
        "é",
        "10^9/L",
        "/uL",
        "anc",
        "\x00",
    ]
)
JSON_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**12), max_value=10**12),
    st.sampled_from([2**63, -(2**63) - 1, 10**30]),
    st.floats(allow_nan=True, allow_infinity=True),
    ODD_TEXT,
    st.text(max_size=8),
    st.just([]),
    st.just({}),
    st.just({"day": 1}),
)


def _paths(doc: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    out = [at] if at else []
    if isinstance(doc, dict):
        for k, v in doc.items():
            out += _paths(v, (*at, k))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            out += _paths(v, (*at, i))
    return out


@st.composite
def mutated_json(draw: st.DrawFn, base: dict[str, Any]) -> str:
    """``base`` with 1-3 values replaced, keys removed or added, then perhaps the text damaged."""
    doc = json.loads(json.dumps(base))
    for _ in range(draw(st.integers(1, 3))):
        paths = _paths(doc)
        if not paths:
            break
        *parent_path, key = draw(st.sampled_from(paths))
        parent = doc
        for k in parent_path:
            parent = parent[k]
        op = draw(st.sampled_from(["set", "set", "delete", "add"]))
        if op == "set":
            parent[key] = draw(JSON_VALUES)
        elif op == "delete":
            del parent[key]
        elif isinstance(parent, dict):
            parent[draw(st.sampled_from(["extra", "value", "day", "date", "type"]))] = draw(
                JSON_VALUES
            )
    text = json.dumps(doc, allow_nan=True)
    damage = draw(st.sampled_from(["none", "none", "none", "truncate", "bom", "char"]))
    if damage == "truncate":
        text = text[: draw(st.integers(0, len(text)))]
    elif damage == "bom":
        text = "\ufeff" + text
    elif damage == "char":
        i = draw(st.integers(0, max(len(text) - 1, 0)))
        text = text[:i] + draw(st.sampled_from(["{", "]", '"', ",", "\\", "\x00"])) + text[i + 1 :]
    return text


@st.composite
def mutated_csv(draw: st.DrawFn, base: list[list[str]]) -> str:
    rows = [list(r) for r in base]
    for _ in range(draw(st.integers(1, 4))):
        op = draw(st.sampled_from(["cell", "cell", "cell", "drop-column", "extra-column", "row"]))
        r = draw(st.integers(0, len(rows) - 1))
        c = draw(st.integers(0, len(rows[0]) - 1))
        if op == "cell":
            rows[r][c] = draw(st.one_of(ODD_TEXT, st.text(max_size=6)))
        elif op == "drop-column":
            rows = [row[:c] + row[c + 1 :] for row in rows]
            if not rows[0]:
                rows = [["patient_id"] for _ in rows]
        elif op == "extra-column":
            rows = [[*row, "x"] for row in rows]
        else:
            rows.insert(r, list(rows[draw(st.integers(0, len(rows) - 1))]))
    text = "\n".join(",".join(row) for row in rows) + "\n"
    if draw(st.booleans()) and draw(st.booleans()):
        text = text[: draw(st.integers(0, len(text)))]
    return text


# --------------------------------------------------------------------------- the property


def output_or_one_clear_error(r: Result, wrote: Path | None = None) -> None:
    event(f"exit {r.code}")  # (the share of each outcome: --hypothesis-show-statistics)
    assert "Traceback" not in r.stderr, r.stderr
    if r.code == 0:
        return
    assert r.one_clear_error, (r.code, r.stdout[:300], r.stderr[:1500])
    if wrote is not None:
        assert not wrote.exists(), "an output was written although the command failed"


def _write(folder: str, name: str, text: str) -> Path:
    p = Path(folder) / name
    p.write_bytes(text.encode("utf-8", errors="surrogatepass"))
    return p


@FUZZ
@given(text=mutated_json(base_course()), guidance=st.booleans())
def test_assess_on_mutated_course_json(text: str, guidance: bool) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, "course.json", text)
        r = invoke("assess", str(path), "--format", "json", *(["--guidance"] if guidance else []))
        output_or_one_clear_error(r)
        if r.code == 0:
            assert json.loads(r.stdout)["patient_id"]


@FUZZ
@given(
    labs=mutated_csv(LABS_CSV),
    patients=st.one_of(st.just(None), mutated_csv(PATIENTS_CSV)),
    events=st.one_of(st.just(None), mutated_csv(EVENTS_CSV)),
    suffix=st.sampled_from([".csv", ".parquet"]),
)
def test_grade_on_mutated_lab_patient_and_event_csv(
    labs: str, patients: str | None, events: str | None, suffix: str
) -> None:
    def table(rows: list[list[str]]) -> str:
        return "\n".join(map(",".join, rows)) + "\n"

    with tempfile.TemporaryDirectory() as d:
        lp = _write(d, "labs.csv", labs)
        pp = _write(d, "patients.csv", patients or table(PATIENTS_CSV))
        ep = _write(d, "events.csv", events or table(EVENTS_CSV))
        out = Path(d) / f"grades{suffix}"
        files = ("--labs", str(lp), "--patients", str(pp), "--events", str(ep))
        r = invoke("grade", *files, "--out", str(out))
        output_or_one_clear_error(r, out)
        if r.code == 0:
            assert out.stat().st_size > 0


def _bundle() -> dict[str, Any]:
    return course_to_bundle(parse_course(base_course()), "collection")


@FUZZ
@given(text=mutated_json(_bundle()))
def test_import_fhir_on_mutated_bundles(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        path = _write(d, "bundle.json", text)
        r = invoke("import", "fhir", str(path))
        assert "Traceback" not in r.stderr, r.stderr
        if r.code == 1:  # read, but no course (or a patient failed): the summary says why
            assert r.stderr.startswith("read "), r.stderr[:1500]
            return
        output_or_one_clear_error(r)
        if r.code == 0:
            assert json.loads(r.stdout)["patient"]["id"]
