"""Issue 12 on the worklist: each stored row carries IEC-HS (ASTCT) and TA-TMA (harmonised
criteria) as the course's assessment gives them, the page shows them as badges with a legend,
the API row has them, and both filter the list."""

from __future__ import annotations

from cart_cytopenia.grading.iec_hs import STATUS
from tests.service.conftest import Service, login


def test_api_rows_carry_the_assessments_iechs_and_tatma(service: Service) -> None:
    client, h = service.client(), service.auth("read-only")
    rows = client.get("/api/v1/worklist", headers=h).json()
    assert len(rows) == 2
    for row in rows:
        a = client.get(f"/api/v1/courses/{row['course_id']}/assessment", headers=h).json()
        ih, tm = a["assessment"]["iechs"], a["assessment"]["tatma"]
        assert row["iechs_status"] == ih["status"] and row["iechs_status"] in STATUS
        assert row["iechs_level"] == ih["guidance_level"]
        assert row["tatma_status"] == tm["status"]
        assert row["tatma_criteria_met"] == tm["criteria_met"]
        assert row["tatma_assessable"] == tm["assessable"]
    # the filters: IEC-HS met or suspected / TA-TMA criteria met are not among these two
    flagged = [r for r in rows if r["iechs_status"] in ("met", "suspected")]
    got = client.get("/api/v1/worklist?iechs=flagged", headers=h).json()
    assert [r["course_id"] for r in got] == [r["course_id"] for r in flagged]
    meets = [r for r in rows if r["tatma_status"] == "meets"]
    assert len(client.get("/api/v1/worklist?tatma=meets", headers=h).json()) == len(meets)
    assert client.get("/api/v1/worklist?iechs=maybe", headers=h).status_code == 422


def test_page_shows_the_badges_with_their_legend(service: Service) -> None:
    client = login(service.client(), "rita")
    page = client.get("/worklist").text
    assert "IEC-HS · TMA" in page
    assert 'title="IEC-HS, ASTCT criteria (Hines 2023): ' in page
    assert "TA-TMA harmonised criteria (Schoettler 2023)" in page
    assert '"HS" is IEC-HS by the ASTCT criteria (Hines 2023)' in page  # the legend
    filtered = client.get("/worklist?iechs=met&tatma=meets").text
    assert "No active course matches." in filtered
    assert 'value="met" selected' in filtered and 'name="tatma" value="meets" checked' in filtered
    assert "Clear" in filtered
