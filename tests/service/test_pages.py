"""Server-rendered pages (service/pages.py, pages_auth.py): sign-in, CSRF, worklist, patient
page, data entry with errors next to the field, uploads, acknowledgements, print view."""

from __future__ import annotations

import re

from cart_cytopenia.store import courses as repo
from tests.service.conftest import PASSWORD, Service, csrf_of, login


def test_pages_need_a_signed_in_user(service: Service) -> None:
    client = service.client()
    r = client.get("/worklist?product=axi-cel")
    assert r.status_code == 303
    assert r.headers["location"] == "/login?next=%2Fworklist%3Fproduct%3Daxi-cel"
    pid = service.patients["wl-neutropenic"]
    assert client.get(f"/patients/{pid}").status_code == 303


def test_sign_in_needs_the_form_token_and_the_right_password(service: Service) -> None:
    client = service.client()
    r = client.post("/login", data={"username": "cleo", "password": PASSWORD, "csrf_token": "x"})
    assert r.status_code == 400
    page = client.get("/login")
    r = client.post(
        "/login",
        data={"username": "cleo", "password": "wrong one!", "csrf_token": csrf_of(page.text)},
    )
    assert r.status_code == 401
    assert "Unknown user name or wrong password" in r.text
    login(client, "cleo")
    assert "cc_session" in client.cookies
    r = client.get("/worklist")
    assert r.status_code == 200
    assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert r.headers["x-frame-options"] == "DENY"


def test_sign_in_is_rate_limited(service: Service) -> None:
    client = service.client()
    for _ in range(3):  # login_max_failures = 3 in the fixture
        page = client.get("/login")
        r = client.post(
            "/login",
            data={
                "username": "cleo",
                "password": "nope nope nope",
                "csrf_token": csrf_of(page.text),
            },
        )
        assert r.status_code == 401
    page = client.get("/login")
    r = client.post(
        "/login", data={"username": "cleo", "password": PASSWORD, "csrf_token": csrf_of(page.text)}
    )
    assert r.status_code == 429
    assert "retry-after" in r.headers


def test_session_cookie_is_signed_and_http_only(service: Service) -> None:
    client = service.client()
    page = client.get("/login")
    r = client.post(
        "/login",
        data={
            "username": "cleo",
            "password": PASSWORD,
            "csrf_token": csrf_of(page.text),
            "next": "//evil.example",
        },
    )
    assert r.headers["location"] == "/worklist"  # no open redirect
    cookie = r.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "samesite=lax" in cookie.lower()
    forged = service.client()
    token = client.cookies["cc_session"].split(".")[0]
    forged.cookies.set("cc_session", token + ".0000")
    assert forged.get("/worklist").status_code == 303


def test_worklist_answers_who_needs_what_today(service: Service) -> None:
    client = login(service.client(), "rita")
    r = client.get("/worklist")
    html = r.text
    assert "wl-neutropenic" in html
    assert "review-case-1" in html
    rows = html.split("<tbody>")[1].split("</tbody>")[0].split("</tr>")[:-1]
    row = next(r for r in rows if "wl-neutropenic" in r)
    assert "consider G-CSF" in row  # day 10, ANC 300, CRS resolved, no G-CSF
    assert re.search(r'class="daybig">10<', row)
    # default order: most urgent open item first
    ranks = {"critical": 5, "warning": 4, "action": 3, "consider": 2}
    tops = [ranks.get(re.search(r'<tr class="(\w*)"', r).group(1), 0) for r in rows]  # type: ignore[union-attr]
    assert tops == sorted(tops, reverse=True)
    # only "consider" items open: not "needs action" ...
    r = client.get("/worklist?needs_action=1")
    assert "wl-neutropenic" not in r.text
    # ... until the antibacterial prophylaxis is removed: "prophylaxis indicated; none recorded"
    cid = service.courses["wl-neutropenic"]
    with service.db.transaction() as s:
        rec = repo.get_course(s, cid)
        levo = next(e for e in rec.events if e.payload.get("drug") == "levofloxacin")
        repo.delete_event(s, rec, levo.id, expected_version=None, user="test")
    r = client.get("/worklist?needs_action=1")
    assert "wl-neutropenic" in r.text
    assert "review-case-1" not in r.text
    r = client.get("/worklist?product=ide-cel")
    assert "wl-neutropenic" not in r.text
    head = html.split("<thead>")[1].split("</thead>")[0]
    assert "T-ICAHT" in head
    case1 = next(r for r in rows if "review-case-1" in r)
    # the T-ICAHT cell (after ICAHT's, before IEC-HS/TA-TMA's): platelets < 20 beyond day 30
    assert re.search(r'<td>late 4</td>\s*<td class="hs">', case1)
    r = client.get("/worklist?sort=day&dir=asc")
    body = r.text.split("<tbody>")[1]
    assert body.index("wl-neutropenic") < body.index("review-case-1")
    r = client.get("/worklist?sort=day&dir=desc")
    body = r.text.split("<tbody>")[1]
    assert body.index("review-case-1") < body.index("wl-neutropenic")
    r = client.get("/worklist?phase=prolonged")
    assert "review-case-1" in r.text
    assert "wl-neutropenic" not in r.text


def test_worklist_search_by_pseudonym_is_posted_never_in_a_url(service: Service) -> None:
    """The pseudonym searched for travels in the form body (CSRF-checked), so that it never
    appears in a URL: not in the form's action, the sort links, nor the Clear link."""
    client = login(service.client(), "rita")
    page = client.get("/worklist?sort=day&dir=desc")
    assert 'method="post" action="/worklist" id="patient-search"' in page.text
    body = {"csrf_token": csrf_of(page.text), "q": "NEUTRO", "sort": "day", "dir": "desc"}
    r = client.post("/worklist", data=body)
    assert r.status_code == 200 and r.url.path == "/worklist" and not r.url.query
    rows = r.text.split("<tbody>")[1].split("</tbody>")[0]
    assert "wl-neutropenic" in rows and "review-case-1" not in rows
    assert 'value="NEUTRO"' in r.text  # kept in the search field
    links = re.findall(r'href="([^"]*)"', r.text)
    assert links and not any("neutro" in link.lower() for link in links)
    # the URL's filters still apply with the search; a search in a URL is not read
    r = client.post("/worklist", data={**body, "product": "ide-cel"})
    assert "wl-neutropenic" not in r.text.split("<tbody>")[1]
    assert "review-case-1" in client.get("/worklist?q=NEUTRO").text.split("<tbody>")[1]
    # without the session's CSRF token: refused
    assert client.post("/worklist", data={"q": "NEUTRO"}).status_code == 403


def test_patient_page_shows_the_course(service: Service) -> None:
    client = login(service.client(), "rita")
    pid = service.patients["review-case-1"]
    html = client.get(f"/patients/{pid}").text
    assert "<svg" in html
    assert "Day 60" in html
    assert "CAR-HEMATOTOX" in html
    assert "Prophylaxis calendar" in html
    assert "History of grades" in html
    assert "Source:" in html
    # what happened, in words: counts with grades and transfusion dependence, inflammation, marrow
    story = html.split('<ul class="story">')[1].split("</ul>")[0]
    assert "platelets 10 ×10³/µL (day 57; G4, transfusion-dependent" in story
    assert "CRS grade 2 (days 1-3)" in story or "CRS grade 2 (day" in story
    assert "ICANS grade 3" in story
    assert "Marrow: day 60: hypocellular" in story
    assert "G-CSF from day 40" in story
    # T-ICAHT beside ICAHT: platelets < 20 from day 5, transfused every 3-7 days to day 60
    ticaht = html.split('id="ticaht"')[1].split("</table>")[0]
    assert "grade 4" in ticaht
    assert "not recovered" in ticaht
    assert "early T-ICAHT grade 4" in story
    # EASIX beside CAR-HEMATOTOX: case 1 has no baseline LDH or creatinine
    easix = html.split('id="easix"')[1].split("</table>")[0]
    assert "not computed (ldh, creatinine missing)" in easix
    # TA-TMA: counts and transfusions only, so 'k of 7 met (m of 7 assessable)' and not assessable
    tma = html.split('id="tatma"')[1].split("</section>")[0]
    assert "not evaluated" in tma and "no TA-TMA-specific work-up" in tma
    assert "of 7</b> met, 5 of 7 not assessable" in tma
    assert tma.count("not assessable</span>") == 5
    # IEC-HS (ASTCT) beside the inflammation record: case 1 has one ferritin, before infusion
    iechs = html.split('id="iechs"')[1].split("</table>")[0]
    assert "not assessable" in iechs and "grade not computed" in iechs
    assert "ferritin after infusion" in iechs
    assert "HScore" in iechs and "incomplete" in iechs
    # a read-only user sees no data-entry or acknowledgement forms
    assert "/labs/new" not in html
    assert "Acknowledge</button>" not in html
    html = client.get(f"/patients/{pid}?day=20").text
    assert "Day 20" in html
    assert client.get("/patients/9999").status_code == 404


def test_acknowledge_an_item_with_a_reason(service: Service) -> None:
    client = login(service.client(), "cleo")
    pid, cid = service.patients["wl-neutropenic"], service.courses["wl-neutropenic"]
    page = client.get(f"/patients/{pid}").text
    assert 'data-item="management.gcsf.start"' in page
    csrf = csrf_of(page)
    url = f"/courses/{cid}/guidance/management.gcsf.start/ack"
    r = client.post(url, data={"csrf_token": csrf, "reason": "", "action": "acknowledge"})
    assert r.status_code == 422
    assert "give a reason" in r.text
    r = client.post(url, data={"reason": "started", "action": "acknowledge"})
    assert r.status_code == 403  # no CSRF token
    r = client.post(
        url,
        data={"csrf_token": csrf, "reason": "filgrastim 480 ug started", "action": "acknowledge"},
    )
    assert r.status_code == 303
    assert "G-CSF" not in r.headers["location"]  # messages never travel in URLs (proxy logs)
    page = client.get(r.headers["location"]).text
    assert 'role="status">Acknowledged: ANC 300' in page  # shown once ...
    assert 'role="status"' not in client.get(r.headers["location"]).text  # ... then gone
    assert "Acknowledged by cleo" in page
    assert "filgrastim 480 ug started" in page
    with service.db.session() as s:
        (ga,) = repo.guidance_actions(s, cid)
    assert (ga.action, ga.username, ga.day) == ("acknowledged", "cleo", 10)


def test_read_only_cannot_write(service: Service) -> None:
    client = login(service.client(), "rita")
    cid = service.courses["wl-neutropenic"]
    csrf = csrf_of(client.get("/worklist").text)
    r = client.post(
        f"/courses/{cid}/labs/new",
        data={"csrf_token": csrf, "analyte": "anc", "value": "5", "unit": "/uL", "day": "11"},
    )
    assert r.status_code == 403
    assert client.get(f"/courses/{cid}/labs/new").status_code == 403


def test_add_lab_by_form_with_errors_next_to_the_field(service: Service) -> None:
    client = login(service.client(), "cleo")
    cid, pid = service.courses["wl-neutropenic"], service.patients["wl-neutropenic"]
    form = client.get(f"/courses/{cid}/labs/new").text
    csrf = csrf_of(form)
    with service.db.session() as s:
        n = len(repo.get_course(s, cid).observations)
    bad = {
        "csrf_token": csrf,
        "version": "1",
        "day": "11",
        "analyte": "anc",
        "value": "300000000",
        "unit": "/uL",
    }
    r = client.post(f"/courses/{cid}/labs/new", data=bad)
    assert r.status_code == 422
    value_field = r.text.split('id="f-value"')[1].split("</div>")[0]
    assert "implausible" in value_field
    assert (
        'aria-invalid="true"'
        in r.text.split('id="f-value"')[0][-200:] + r.text.split('id="f-value"')[1][:300]
    )
    r = client.post(f"/courses/{cid}/labs/new", data={**bad, "value": "320", "unit": "parsecs"})
    assert r.status_code == 422
    assert "unit" in r.text.split('id="e-unit"')[1][:300]
    r = client.post(f"/courses/{cid}/labs/new", data={**bad, "day": "", "value": "320"})
    assert r.status_code == 422
    assert "give a date or a day" in r.text
    with service.db.session() as s:
        assert len(repo.get_course(s, cid).observations) == n
    r = client.post(f"/courses/{cid}/labs/new", data={**bad, "value": "420"})
    assert r.status_code == 303
    assert r.headers["location"].startswith(f"/patients/{pid}?course={cid}")
    with service.db.session() as s:
        rec = repo.get_course(s, cid)
        assert len(rec.observations) == n + 1
        assert rec.version == 2
    # the form still holding version 1 is refused, nothing saved
    r = client.post(f"/courses/{cid}/labs/new", data={**bad, "value": "430"})
    assert r.status_code == 422
    assert "changed by someone else" in r.text


def test_add_event_by_form(service: Service) -> None:
    client = login(service.client(), "cleo")
    cid = service.courses["wl-neutropenic"]
    form = client.get(f"/courses/{cid}/events/new?type=medication").text
    assert 'name="drug"' in form
    assert 'name="start_date"' in form
    csrf = csrf_of(form)
    r = client.post(
        f"/courses/{cid}/events/new",
        data={
            "csrf_token": csrf,
            "type": "crs",
            "start_day": "5",
            "end_day": "2",
            "max_grade": "9",
        },
    )
    assert r.status_code == 422
    assert "max_grade" in r.text or "Maximum grade" in r.text
    grade_block = r.text.split('id="f-max_grade"')[1].split('class="help"')[0]
    assert "field-error" in grade_block
    r = client.post(
        f"/courses/{cid}/events/new",
        data={
            "csrf_token": csrf,
            "type": "medication",
            "drug": "filgrastim",
            "start_day": "10",
            "dose": "480",
            "dose_unit": "ug",
        },
    )
    assert r.status_code == 303, r.text
    with service.db.session() as s:
        events = sorted(repo.get_course(s, cid).events, key=lambda e: e.id)
    assert [e.payload.get("drug") for e in events if e.type == "medication"][-1:] == ["filgrastim"]
    assert next(e for e in events if e.payload.get("drug") == "filgrastim").start_day == 10


def test_upload_bad_csv_shows_rows_and_saves_nothing(service: Service) -> None:
    client = login(service.client(), "cleo")
    cid = service.courses["wl-neutropenic"]
    csrf = csrf_of(client.get(f"/courses/{cid}/labs/upload").text)
    bad = b"day,analyte,value,unit\n11,anc,400,/uL\n12,anc,lots,/uL\n13,unobtainium,5,/uL\n"
    r = client.post(
        f"/courses/{cid}/labs/upload",
        data={"csrf_token": csrf},
        files={"file": ("labs.csv", bad, "text/csv")},
    )
    assert r.status_code == 422
    assert "Nothing was saved" in r.text
    assert "row 3" in r.text
    with service.db.session() as s:
        n = len(repo.get_course(s, cid).observations)
    bad_unit = b"date,analyte,value,unit\n2024-06-01,anc,400,/uL\n2024-06-01,hb,9,mmHg\n"
    r = client.post(
        f"/courses/{cid}/labs/upload",
        data={"csrf_token": csrf},
        files={"file": ("labs2.csv", bad_unit, "text/csv")},
    )
    assert r.status_code == 422
    assert "row 3" in r.text
    assert "unit" in r.text
    good = b"date,analyte,value,unit\n2024-06-01,anc,<100,/uL\n2024-06-01,platelets,55,10*3/uL\n"
    r = client.post(
        f"/courses/{cid}/labs/upload",
        data={"csrf_token": csrf},
        files={"file": ("labs3.csv", good, "text/csv")},
    )
    assert r.status_code == 303, r.text
    with service.db.session() as s:
        obs = repo.get_course(s, cid).observations
    assert len(obs) == n + 2
    assert any(o.comparator == "<" and o.value == 100 for o in obs)


def test_import_course_json(service: Service) -> None:
    client = login(service.client(), "cleo")
    csrf = csrf_of(client.get("/import").text)
    r = client.post(
        "/import",
        data={"csrf_token": csrf},
        files={"file": ("c.json", b"{not json", "application/json")},
    )
    assert r.status_code == 422
    assert "not valid JSON" in r.text
    from tests.conftest import EXAMPLES

    r = client.post(
        "/import",
        data={"csrf_token": csrf},
        files={
            "file": (
                "case3.json",
                (EXAMPLES / "review-case-3.json").read_bytes(),
                "application/json",
            )
        },
    )
    assert r.status_code == 303
    assert "review-case-3" in client.get("/worklist").text


def test_print_view_is_a_consult_note(service: Service) -> None:
    client = login(service.client(), "rita")
    pid = service.patients["review-case-1"]
    html = client.get(f"/patients/{pid}/print").text
    assert "Haematology consult" in html
    assert "Physician (name, signature)" in html
    assert "Infection prophylaxis plan" in html
    assert "<svg" in html


def test_data_page_lists_and_deletes(service: Service) -> None:
    client = login(service.client(), "cleo")
    cid, pid = service.courses["wl-neutropenic"], service.patients["wl-neutropenic"]
    html = client.get(f"/patients/{pid}/data").text
    csrf = csrf_of(html)
    with service.db.session() as s:
        rec = repo.get_course(s, cid)
        oid, n = rec.observations[0].id, len(rec.observations)
    r = client.post(
        f"/courses/{cid}/observations/{oid}/delete", data={"csrf_token": csrf, "version": "1"}
    )
    assert r.status_code == 303
    with service.db.session() as s:
        assert len(repo.get_course(s, cid).observations) == n - 1


def test_account_tokens_and_admin_pages(service: Service) -> None:
    client = login(service.client(), "cleo")
    html = client.get("/account").text
    r = client.post("/account/tokens", data={"csrf_token": csrf_of(html), "name": "lab feed"})
    token = r.text.split('id="new-token">')[1].split("<")[0]
    assert token.startswith("cct_")
    assert (
        client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"}).json()["username"]
        == "cleo"
    )
    assert client.get("/admin/users").status_code == 403
    admin = login(service.client(), "ada")
    html = admin.get("/admin/users").text
    r = admin.post(
        "/admin/users",
        data={
            "csrf_token": csrf_of(html),
            "username": "newbie",
            "password": "long enough pw",
            "role": "read-only",
        },
    )
    assert "Created newbie" in r.text
    audit_html = admin.get("/admin/audit").text
    assert "login" in audit_html
    assert "cleo" in audit_html


def test_sign_out_ends_the_session(service: Service) -> None:
    client = login(service.client(), "cleo")
    csrf = csrf_of(client.get("/worklist").text)
    r = client.post("/logout", data={"csrf_token": csrf})
    assert r.status_code == 303
    assert client.get("/worklist").status_code == 303
