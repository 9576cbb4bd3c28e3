"""The FHIR commands (cli/fhir_cmd.py) as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.codesystem import CodeSystem

from cart_cytopenia.cohort.synthetic import PHENOTYPES
from cart_cytopenia.domain.course import parse_course
from tests.conftest import EXAMPLES, ROOT
from tests.fhir.conftest import normalised


def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [sys.executable, "-m", "cart_cytopenia.cli.main", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    if check and p.returncode != 0:
        raise AssertionError(f"exit {p.returncode}\nstdout:{p.stdout}\nstderr:{p.stderr}")
    return p


def test_export_bundle_then_import_gives_the_same_course(tmp_path: Path) -> None:
    src = EXAMPLES / "review-case-2.json"
    bundle = tmp_path / "b.json"
    run("export", "fhir-bundle", str(src), "--out", str(bundle), "--type", "transaction")
    doc = json.loads(bundle.read_text())
    assert doc["type"] == "transaction" and all(
        e["request"]["method"] == "PUT" for e in doc["entry"]
    )
    Bundle.model_validate(doc)
    p = run("import", "fhir", str(bundle), "--report", str(tmp_path / "report.json"))
    assert "1 course(s)" in p.stderr
    back = parse_course(p.stdout)
    assert normalised(back) == normalised(parse_course(src.read_text()))
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["courses"] == ["review-case-2"] and report["unmapped"] == []


def test_synthetic_bundle_per_phenotype_imports_to_a_directory(tmp_path: Path) -> None:
    run("export", "fhir-bundle", "--synthetic", "--seed", "11", "--out", str(tmp_path / "fhir"))
    files = sorted((tmp_path / "fhir").glob("*.json"))
    assert sorted(f.name.split("-")[0] for f in files) == sorted(PHENOTYPES)
    p = run("import", "fhir", str(tmp_path / "fhir"), "--out", str(tmp_path / "courses"))
    assert len(list((tmp_path / "courses").glob("*.json"))) == 3
    assert "3 course(s)" in p.stderr


def test_ndjson_export_and_import(tmp_path: Path) -> None:
    out = tmp_path / "all.ndjson"
    run(
        "export",
        "fhir-bundle",
        *(str(EXAMPLES / f"review-case-{i}.json") for i in (1, 2, 3)),
        "--ndjson",
        "--out",
        str(out),
    )
    assert len(out.read_text().splitlines()) > 300
    p = run("import", "fhir", str(out), check=False)
    assert p.returncode == 2 and "give --out DIR" in p.stderr


def test_import_reports_unmapped_and_fails_without_infusion(tmp_path: Path) -> None:
    f = tmp_path / "p.json"
    f.write_text(
        json.dumps(
            {
                "resourceType": "Bundle",
                "type": "collection",
                "entry": [
                    {"resource": {"resourceType": "Patient", "id": "p"}},
                    {
                        "resource": {
                            "resourceType": "Encounter",
                            "id": "e",
                            "status": "finished",
                            "class": {"code": "AMB"},
                        }
                    },
                ],
            }
        )
    )
    p = run("import", "fhir", str(f), check=False)
    assert p.returncode == 1
    assert "not used" in p.stderr and "Encounter" in p.stderr
    assert "no CAR-T infusion" in p.stderr


def test_import_of_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    p = run("import", "fhir", str(tmp_path / "nope.json"), check=False)
    assert p.returncode == 2 and "does not exist" in p.stderr


def test_export_codesystem(tmp_path: Path) -> None:
    run("export", "fhir-codesystem", "--out", str(tmp_path / "cs.json"))
    CodeSystem.model_validate(json.loads((tmp_path / "cs.json").read_text()))


def test_import_summary_keeps_its_own_figures_and_masks_the_patients() -> None:
    """Issue 15: the summary showed "below … °C", "grade …" and "LOINC …-…"; only what comes
    from the resources (a reference to the patient, a value) is masked or grouped."""
    import io

    from cart_cytopenia.cli.fhir_cmd import print_report
    from cart_cytopenia.io.fhir_import import FhirImport, Unmapped

    result = FhirImport(
        unmapped=[
            Unmapped(
                "Observation/t1", "body temperature below 38 °C: a course records fevers only"
            ),
            Unmapped(
                "Observation/t2", "body temperature below 38 °C: a course records fevers only"
            ),
            Unmapped("Observation/s", "not a laboratory test cart-cytopenia uses (2951-2: Sodium)"),
            Unmapped(
                "Observation/x",
                "subject 'Patient/MRN-4711' is not a Patient reference; cannot tell whose it is",
            ),
            Unmapped(
                "Observation/a", "implausible ANC: 1500 10*9/L is ...", group="implausible ANC"
            ),
            Unmapped(
                "Observation/b", "implausible ANC: 2200 10*9/L is ...", group="implausible ANC"
            ),
        ],
        resources_read={"Observation": 6},
    )
    out = io.StringIO()
    print_report(result, out)
    text = out.getvalue()
    assert "2 × body temperature below 38 °C: a course records fevers only" in text
    assert "(2951-2: Sodium)" in text
    assert "MRN-4711" not in text and "subject … is not a Patient reference" in text
    assert "2 × implausible ANC" in text and "1500" not in text
