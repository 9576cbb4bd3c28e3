"""Every bad command-line input of issue 15 is one clear error: exit 2, one message, no
traceback, and nothing half-written (no output file, or the earlier one untouched)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from tests.cli.invoke import Result, invoke
from tests.conftest import EXAMPLES

COHORT = EXAMPLES / "cohort"
CASE = EXAMPLES / "review-case-1.json"


def clear_error(r: Result, *texts: str) -> None:
    assert r.one_clear_error, (r.code, r.stdout[:500], r.stderr[:2000])
    for t in texts:
        assert t in r.stderr, r.stderr


def grade(
    tmp_path: Path, labs: Path, patients: Path = COHORT / "patients.csv", **kw: str
) -> Result:
    out = kw.pop("out", str(tmp_path / "grades.csv"))
    extra = [x for k, v in kw.items() for x in (f"--{k.replace('_', '-')}", v)]
    return invoke("grade", "--labs", str(labs), "--patients", str(patients), "--out", out, *extra)


def course(tmp_path: Path, name: str = "c.json", **change: object) -> Path:
    doc = json.loads(CASE.read_text(encoding="utf-8"))
    for path, value in change.items():
        *parents, last = path.split("__")
        target = doc
        for key in parents:
            target = target[int(key)] if key.isdigit() else target[key]
        target[int(last) if last.isdigit() else last] = value
    p = tmp_path / name
    p.write_text(json.dumps(doc), encoding="utf-8")
    return p


# --------------------------------------------------------------------------- lab and patient tables


def test_empty_lab_csv(tmp_path: Path) -> None:
    empty = tmp_path / "labs.csv"
    empty.write_bytes(b"")
    clear_error(grade(tmp_path, empty), "labs.csv is empty")
    empty.write_text("patient_id,day,analyte,value,unit\n")
    clear_error(grade(tmp_path, empty), "no lab rows")
    assert not (tmp_path / "grades.csv").exists()


@pytest.mark.parametrize("which", ["labs", "patients"])
def test_corrupt_parquet_for_grade(tmp_path: Path, which: str) -> None:
    bad = tmp_path / f"{which}.parquet"
    bad.write_bytes(b"PAR1" + os.urandom(200))
    files = {"labs": COHORT / "labs.csv", "patients": COHORT / "patients.csv", which: bad}
    clear_error(grade(tmp_path, files["labs"], files["patients"]), f"{bad} cannot be parsed")
    assert not (tmp_path / "grades.csv").exists()


def test_corrupt_parquet_for_cohort_report(tmp_path: Path) -> None:
    cohort = tmp_path / "cohort"
    cohort.mkdir()
    shutil.copy(COHORT / "patients.csv", cohort)
    (cohort / "labs.parquet").write_bytes(os.urandom(300))
    r = invoke("cohort", "report", str(cohort), "--out", str(tmp_path / "r.html"))
    clear_error(r, "labs.parquet cannot be parsed")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cohort"]


def test_every_bad_lab_row_is_listed(tmp_path: Path) -> None:
    """Unreadable values and days, unknown unit and analyte, implausible value: all at once."""
    labs = tmp_path / "labs.csv"
    labs.write_text(
        "patient_id,day,analyte,value,unit\n"
        "review-case-1,1,anc,abc,/uL\n"
        "review-case-1,x,anc,500,/uL\n"
        "review-case-1,3,anc,500,furlongs\n"
        "review-case-1,4,anc,1500,10^9/L\n"
        "review-case-1,5,zzz,1,/uL\n"
        "review-case-1,6,anc,500,/uL\n"
    )
    r = grade(tmp_path, labs)
    clear_error(r, "'abc' is not a number", "'x' is not a whole number of days")
    clear_error(r, "unknown unit 'furlongs'", "probably 1500 /uL", "unknown analyte 'zzz'")
    for row in (2, 3, 4, 5, 6):
        assert f"row {row}," in r.stderr
    assert "row 7," not in r.stderr


def test_a_file_of_bad_rows_says_how_many_in_all(tmp_path: Path) -> None:
    """The first 20 bad rows are listed, then the number in all: it read "... and 1 more" for
    400 unreadable values (the count was the 21st problem, left out with the rest)."""
    labs = tmp_path / "labs.csv"
    rows = [f"review-case-1,{day},anc,abc,/uL" for day in range(400)]
    rows += [f"review-case-2,{day},anc,1500,10^9/L" for day in range(30)]
    labs.write_text("patient_id,day,analyte,value,unit\n" + "\n".join(rows) + "\n")
    r = grade(tmp_path, labs)
    clear_error(r, "400 rows with an unreadable value in all", "30 implausible values in all")
    assert r.stderr.count("  - ") == 20
    assert "and 1 more" not in r.stderr


def test_patient_table_values_must_be_their_type(tmp_path: Path) -> None:
    """As the course JSON: age 0-120 years, a prior HCT yes or no (empty: unknown)."""
    text = (COHORT / "patients.csv").read_text()
    patients = tmp_path / "patients.csv"
    patients.write_text(
        text.replace(",65.0,male,", ",-3,male,").replace("axi-cel,false", "axi-cel,maybe")
    )
    r = grade(tmp_path, COHORT / "labs.csv", patients)
    clear_error(r, "field 'age_years'", "field 'prior_allo_hct'", "'maybe' is not yes or no")
    assert "row 2" in r.stderr
    patients.write_text(
        text.replace("axi-cel,false,true", "axi-cel,no,").replace(",63.0,", ",abc,")
    )
    clear_error(grade(tmp_path, COHORT / "labs.csv", patients), "'abc' is not an age")
    patients.write_text(text.replace("axi-cel,false,true", "axi-cel,No,"))
    assert grade(tmp_path, COHORT / "labs.csv", patients).code == 0


# --------------------------------------------------------------------------- output paths


def test_output_in_a_missing_folder(tmp_path: Path) -> None:
    nowhere = tmp_path / "no" / "such"
    r = grade(tmp_path, COHORT / "labs.csv", out=str(nowhere / "g.csv"))
    clear_error(r, "does not exist (create it first")
    r = invoke("export", "fhir", str(CASE), "--out", str(nowhere / "b.json"))
    clear_error(r, "does not exist")
    r = invoke("cohort", "report", str(COHORT), "--out", str(nowhere / "r.html"))
    clear_error(r, "does not exist")
    r = invoke("import", "fhir", str(CASE), "--out", str(nowhere / "dir"))
    clear_error(r, "does not exist")
    r = invoke("docs", "rules", "--out", str(nowhere / "rules.md"))
    clear_error(r, "does not exist")
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a read-only-mode folder")
def test_output_in_an_unwritable_folder(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    r = grade(tmp_path, COHORT / "labs.csv", out=str(locked / "g.csv"))
    clear_error(r, f"cannot write in {locked}")


def test_output_in_a_folder_no_one_can_write(tmp_path: Path) -> None:
    """/proc takes no new files, for root too."""
    clear_error(grade(tmp_path, COHORT / "labs.csv", out="/proc/g.csv"), "cannot write in /proc")
    afile = tmp_path / "f"
    afile.write_text("x")
    clear_error(grade(tmp_path, COHORT / "labs.csv", out=str(afile / "g.csv")), "is not a folder")


def test_out_equal_to_an_input(tmp_path: Path) -> None:
    labs = tmp_path / "labs.csv"
    shutil.copy(COHORT / "labs.csv", labs)
    before = labs.read_bytes()
    r = grade(tmp_path, labs, out=str(tmp_path / "." / "labs.csv"))
    clear_error(r, "is also an input of this command")
    c = course(tmp_path)
    clear_error(invoke("export", "fhir", str(c), "--out", str(c)), "is also an input")
    clear_error(invoke("export", "fhir-bundle", str(c), "--out", str(c)), "is also an input")
    clear_error(invoke("import", "fhir", str(c), "--report", str(c)), "is also an input")
    assert labs.read_bytes() == before
    assert json.loads(c.read_text())["patient"]["id"] == "review-case-1"


def test_import_never_writes_over_its_input(tmp_path: Path) -> None:
    """A patient whose course file would have the input's own name."""
    bundle = tmp_path / "review-case-1.json"
    assert invoke("export", "fhir-bundle", str(CASE), "--out", str(bundle)).code == 0
    before = bundle.read_bytes()
    r = invoke("import", "fhir", str(bundle), "--out", str(tmp_path))
    clear_error(r, "is also an input")
    assert bundle.read_bytes() == before


def test_report_tables_never_replace_the_cohort(tmp_path: Path) -> None:
    """`cohort report` replaces <name>_tables/ whole: never the directory it reads."""
    cohort = tmp_path / "r_tables"
    shutil.copytree(COHORT, cohort)
    r = invoke("cohort", "report", str(cohort), "--out", str(tmp_path / "r.html"))
    clear_error(r, "is also an input")
    assert sorted(p.name for p in cohort.iterdir()) == ["events.csv", "labs.csv", "patients.csv"]


# --------------------------------------------------------------------------- assess and import


def test_assess_day_beyond_any_date() -> None:
    clear_error(invoke("assess", str(CASE), "--day", "99999999999"), "not a calendar date")
    clear_error(invoke("assess", str(CASE), "--day", "-99999999999", "--guidance"), "--day")


def test_assess_on_a_directory() -> None:
    clear_error(invoke("assess", str(EXAMPLES)), "is a folder")


def test_deeply_nested_json_in_import_fhir(tmp_path: Path) -> None:
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 100_000 + "]" * 100_000)
    clear_error(invoke("import", "fhir", str(deep)), "nested too deeply")
    opening = '{"resourceType": "Bundle", "type": "collection", "entry": [{"resource": '
    innermost = '{"resourceType": "Bundle", "type": "collection"}'
    depth = 2_000  # Bundles in Bundles
    nested = tmp_path / "nested.json"
    nested.write_text(opening * depth + innermost + "}]}" * depth)
    clear_error(invoke("import", "fhir", str(nested)), "nested too deeply")
    clear_error(invoke("assess", str(deep)), "not valid JSON")


def test_course_json_with_a_byte_order_mark_is_read(tmp_path: Path) -> None:
    bom = tmp_path / "bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + CASE.read_bytes())
    r = invoke("assess", str(bom), "--format", "json")
    assert r.code == 0, r.stderr
    assert json.loads(r.stdout)["patient_id"] == "review-case-1"


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"labs__5__value": True}, "'labs.5.value': a number is needed, not true/false"),
        ({"labs__5__day": False}, "'labs.5.day': a number is needed, not true/false"),
        ({"labs__5__value": "NaN"}, "'labs.5.value': Input should be a finite number"),
        ({"schema_version": "2.0"}, "schema_version '2.0' is not one this version reads (1.0)"),
        ({"patient__age_years": -3}, "'patient.age_years': Input should be greater than"),
        ({"patient__prior_allo_hct": "maybe"}, "'patient.prior_allo_hct': Extra inputs"),
        ({"labs__5__day": 99_999_999_999}, "day 99999999999 is not a calendar date"),
    ],
    ids=["value-true", "day-false", "value-nan", "schema-version", "age", "prior-allo", "day"],
)
def test_course_values_must_be_their_type(
    tmp_path: Path, change: dict[str, object], message: str
) -> None:
    """`"value": true` was read as an ANC of 1/uL (and changed the ICAHT grade)."""
    clear_error(invoke("assess", str(course(tmp_path, **change))), message)


def test_grade_as_of_beyond_any_date(tmp_path: Path) -> None:
    r = grade(tmp_path, COHORT / "labs.csv", as_of="99999999999")
    clear_error(r, "--as-of 99999999999")


# --------------------------------------------------------------------------- export file names


def test_export_fhir_bundle_never_writes_two_patients_to_one_file(tmp_path: Path) -> None:
    """`a/b`, `a_b` and `A_B` make the same safe file name; two files give the same patient."""
    ids = ["a/b", "a_b", "A_B"]
    files = [course(tmp_path, f"c{i}.json", patient__id=pid) for i, pid in enumerate(ids)]
    files.append(course(tmp_path, "again.json", patient__id="a_b"))
    out = tmp_path / "bundles"
    r = invoke("export", "fhir-bundle", *map(str, files), "--out", str(out))
    assert r.code == 0, r.stderr
    written = sorted(p.name for p in out.iterdir())
    assert written == ["A_B-3.json", "a_b-2.json", "a_b-4.json", "a_b.json"]
    patients = {
        name: next(
            e["resource"]["id"]
            for e in json.loads((out / name).read_text())["entry"]
            if e["resource"]["resourceType"] == "Patient"
        )
        for name in written
    }
    # three patients, three FHIR ids (the same patient twice: the same id)
    assert len(set(patients.values())) == 3
    assert patients["a_b.json"] != patients["a_b-2.json"] == patients["a_b-4.json"]


def test_import_never_writes_over_a_file_of_an_input_folder(tmp_path: Path) -> None:
    exports = tmp_path / "exports"
    exports.mkdir()
    bundle = exports / "review-case-1.json"
    assert invoke("export", "fhir-bundle", str(CASE), "--out", str(bundle)).code == 0
    before = bundle.read_bytes()
    clear_error(invoke("import", "fhir", str(exports), "--out", str(exports)), "is also an input")
    assert bundle.read_bytes() == before
    assert invoke("import", "fhir", str(exports), "--out", str(tmp_path / "courses")).code == 0
    assert (tmp_path / "courses" / "review-case-1.json").exists()


def test_settings_that_are_a_folder_or_not_text() -> None:
    clear_error(invoke("assess", str(CASE), "--settings", str(EXAMPLES)), "cannot be read")


def test_corrupt_parquet_table_in_an_omop_extract(tmp_path: Path) -> None:
    extract = tmp_path / "omop"
    assert invoke("cohort", "generate", "--patients", "5", "--omop", str(extract)).code == 0
    (extract / "person.parquet").write_bytes(os.urandom(100))
    r = invoke("cohort", "omop", str(extract), "--out", str(tmp_path / "g.csv"))
    clear_error(r, "PERSON cannot be read")
    assert not (tmp_path / "g.csv").exists()


def test_grade_output_kind_checked_before_grading(tmp_path: Path) -> None:
    clear_error(
        grade(tmp_path, COHORT / "labs.csv", out=str(tmp_path / "g.txt")), ".csv or .parquet"
    )


def test_event_table_types_and_grades_as_the_course_json(tmp_path: Path) -> None:
    """An unknown event type was left out of the grades without a word (a CRS written
    "cytokine storm" gave no CRS); the type is read in any case; grades within their range."""
    events = tmp_path / "events.csv"
    text = (COHORT / "events.csv").read_text()
    events.write_text(text.replace("review-case-1,crs,2,3,2", "review-case-1,cytokine storm,2,3,2"))
    r = grade(tmp_path, COHORT / "labs.csv", events=str(events))
    clear_error(r, "'cytokine storm' is not an event type", "row 2")
    events.write_text(text.replace("review-case-1,crs,2,3,2", "review-case-1,crs,2,3,7"))
    clear_error(grade(tmp_path, COHORT / "labs.csv", events=str(events)), "a crs grade from 1 to 4")
    events.write_text(text.replace("review-case-1,crs,2,3,2", "review-case-1, CRS ,2,3,2"))
    assert grade(tmp_path, COHORT / "labs.csv", events=str(events)).code == 0


def test_event_table_without_patient_id(tmp_path: Path) -> None:
    events = tmp_path / "events.csv"
    events.write_text("id,type,start_day\nreview-case-1,crs,2\n")
    clear_error(grade(tmp_path, COHORT / "labs.csv", events=str(events)), "needs 'patient_id'")


def test_bundle_entries_of_the_wrong_shape(tmp_path: Path) -> None:
    """Found by the fuzz test: a resource that is not an object, a fullUrl that is not a text
    and a resourceType null (the duplicate check read it as a text) were tracebacks."""
    bundle = tmp_path / "b.json"
    for entry, message in [
        ({"resource": False}, "resource must be an object"),
        ({"fullUrl": 5, "resource": {"resourceType": "Patient", "id": "x"}}, "fullUrl a text"),
    ]:
        bundle.write_text(
            json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [entry]})
        )
        clear_error(invoke("import", "fhir", str(bundle)), message)
    entry = {"resource": {"resourceType": None, "id": "x"}}
    bundle.write_text(
        json.dumps({"resourceType": "Bundle", "type": "collection", "entry": [entry]})
    )
    r = invoke("import", "fhir", str(bundle))
    assert (
        r.code == 1 and "is not a FHIR R4 resource type" in r.stderr and "Traceback" not in r.stderr
    )


# --------------------------------------------------------------------------- cohort partition


def partition(out: Path, into: int, labs: Path = COHORT / "labs.csv", **kw: str) -> Result:
    extra = [x for k, v in kw.items() for x in (f"--{k}", v)]
    return invoke(
        "cohort", "partition", "--labs", str(labs), "--patients", str(COHORT / "patients.csv"),
        "--out", str(out), "--into", str(into), *extra,
    )  # fmt: skip


def test_partition_output_is_checked_like_any_other(tmp_path: Path) -> None:
    """`cohort partition` made a missing folder tree, and --out naming an input file was a
    traceback; a shard folder of --out holding an input is refused (it is replaced whole)."""
    clear_error(partition(tmp_path / "no" / "parts", 2), "does not exist (create it first")
    assert not (tmp_path / "no").exists()
    labs = tmp_path / "labs.csv"
    shutil.copy(COHORT / "labs.csv", labs)
    clear_error(partition(labs, 2, labs), "is a file; give a folder")
    parts = tmp_path / "parts"
    assert partition(parts, 2).code == 0
    inside = parts / "shard=0" / "labs.parquet"
    clear_error(partition(parts, 2, inside), "is in a shard folder of --out")
    assert inside.exists()


def test_a_failed_partition_leaves_the_earlier_shards(tmp_path: Path) -> None:
    parts = tmp_path / "parts"
    assert partition(parts, 3).code == 0
    before = {p.relative_to(parts): p.read_bytes() for p in parts.rglob("*") if p.is_file()}
    bad = tmp_path / "events.csv"
    bad.write_text("x,y\n1,2\n")
    r = partition(parts, 2, events=str(bad))
    clear_error(r, "cannot partition the cohort")
    after = {p.relative_to(parts): p.read_bytes() for p in parts.rglob("*") if p.is_file()}
    assert after == before and sorted(p.name for p in parts.iterdir()) == [
        "shard=0", "shard=1", "shard=2",
    ]  # fmt: skip
    # a run with fewer shards replaces all of the earlier ones: shard=* is always one run's
    assert partition(parts, 2).code == 0
    assert sorted(p.name for p in parts.iterdir()) == ["shard=0", "shard=1"]
    (parts / "shard=1" / "notes.txt").write_text("mine")
    clear_error(partition(parts, 2), "holds other files than a shard's")
    assert (parts / "shard=1" / "notes.txt").read_text() == "mine"


def test_an_output_never_replaces_a_file_of_a_folder_or_glob_input(tmp_path: Path) -> None:
    """`grade --labs 'parts/*/labs.parquet' --out parts/shard=0/labs.parquet` wrote the grades
    over a lab file it had read; `cohort omop DIR --out DIR/person.parquet` over the extract's
    PERSON table."""
    parts = tmp_path / "parts"
    assert partition(parts, 2).code == 0
    part = parts / "shard=0" / "labs.parquet"
    before = part.read_bytes()
    pats = str(COHORT / "patients.csv")
    for labs in (str(parts / "*" / "labs.parquet"), str(parts)):
        r = invoke("grade", "--labs", labs, "--patients", pats, "--out", str(part))
        clear_error(r, "is also an input")
    assert part.read_bytes() == before
    extract = tmp_path / "omop"
    assert invoke("cohort", "generate", "--patients", "3", "--omop", str(extract)).code == 0
    person = (extract / "person.parquet").read_bytes()
    r = invoke("cohort", "omop", str(extract), "--out", str(extract / "person.parquet"))
    clear_error(r, "is also an input")
    assert (extract / "person.parquet").read_bytes() == person
    # an output beside the tables (not one of them) is written, again and again
    for _ in range(2):
        assert invoke("cohort", "omop", str(extract), "--out", str(extract / "g.csv")).code == 0


# --------------------------------------------------------------------------- the web app's store


@pytest.mark.parametrize(
    "args", [("db", "upgrade"), ("demo", "load", "--n", "2"), ("users", "token", "ada")]
)
def test_a_database_that_cannot_be_reached(
    args: tuple[str, ...], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A PostgreSQL server that is not running (nothing listens on port 1): one message naming
    the setting, no traceback (it was one), and never the password of the URL."""
    monkeypatch.setenv("CART_CYTOPENIA_ENVIRONMENT", "development")
    monkeypatch.setenv("CART_CYTOPENIA_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CART_CYTOPENIA_DATABASE_URL", "postgresql://cc:s3cret-pw@127.0.0.1:1/cc")
    r = invoke(*args)
    clear_error(r, "cannot use the database", "CART_CYTOPENIA_DATABASE_URL")
    assert "s3cret-pw" not in r.stderr


def test_demo_size_is_checked_before_the_store_is_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`demo load --reset --n 99999999999` emptied the store, then took all memory (killed)."""
    from cart_cytopenia.store import courses as repo
    from cart_cytopenia.store.db import Database

    monkeypatch.setenv("CART_CYTOPENIA_ENVIRONMENT", "development")
    monkeypatch.setenv("CART_CYTOPENIA_DATA_DIR", str(tmp_path))
    assert invoke("demo", "load", "--n", "0", "--workers", "1").code == 0
    for n in ("99999999999", "-5"):
        r = invoke("demo", "load", "--reset", "--n", n)
        assert r.code == 2 and "--n" in r.stderr and "Traceback" not in r.stderr, r.stderr
    db = Database(f"sqlite:///{next(tmp_path.rglob('*.db'))}")
    with db.session() as s:
        assert repo.count_patients(s) == 3  # the review's three cases are still there
    db.dispose()


def test_cohort_generate_size_is_bounded(tmp_path: Path) -> None:
    """`cohort generate --patients 99999999999999` started writing until stopped."""
    for n in ("99999999999999", "0", "-3"):
        r = invoke("cohort", "generate", "--patients", n, "--out", str(tmp_path / "c"))
        assert r.code == 2 and "--patients" in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not (tmp_path / "c").exists()
