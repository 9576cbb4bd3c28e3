"""Screenshots of the web app for the README: demo data, headless Debian Chromium.

    .venv/bin/python scripts/screenshots.py [--out docs/screenshots]

Loads the review cases and a synthetic cohort into a temporary development store (today fixed,
so the pictures are reproducible), serves the app on a free loopback port, signs in and
captures the worklist and a patient page (and the print view with --print-view). With
--cohort-report it also generates a 2,000-patient synthetic cohort, builds its report and captures
its first cumulative-incidence figure and its swimmer plot. Needs /usr/bin/chromium (apt-get install
chromium); Playwright drives it, nothing is downloaded.
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import uvicorn
from playwright.sync_api import sync_playwright

from cart_cytopenia.cli.serve_cmd import demo_courses
from cart_cytopenia.domain.course import Death
from cart_cytopenia.service.app import create_app
from cart_cytopenia.service.config import ServiceSettings
from cart_cytopenia.store import accounts
from cart_cytopenia.store import courses as repo
from cart_cytopenia.store.db import Database
from cart_cytopenia.store.migrate import upgrade

TODAY = dt.date(2025, 3, 12)
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    ap.add_argument("--chromium", default="/usr/bin/chromium")
    ap.add_argument("--print-view", action="store_true", help="also capture the print view")
    ap.add_argument(
        "--cohort-report", action="store_true", help="also capture a synthetic cohort report"
    )
    args = ap.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.cohort_report:
        cohort_report(args.out, args.chromium)
    with tempfile.TemporaryDirectory() as tmp:
        settings = ServiceSettings(
            environment="development",
            database_url=f"sqlite:///{tmp}/demo.db",
            today=TODAY,
            clinical_settings_file=None,
        )
        db = Database(settings.effective_database_url)
        upgrade(db)
        password = secrets.token_urlsafe(12)
        with db.transaction() as s:
            for c in demo_courses(24, 20231, TODAY):
                status = "closed" if c.events_of(Death) else "active"
                repo.import_course(s, c, user="demo-loader", source="demo", status=status)
            accounts.create_user(s, "demo", password, "clinician", "Dr Demo")
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        server = uvicorn.Server(
            uvicorn.Config(create_app(settings, database=db), port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.05)
        base = f"http://127.0.0.1:{port}"
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1440, "height": 1000})
            page.goto(base + "/login")
            page.fill("input[name=username]", "demo")
            page.fill("input[name=password]", password)
            page.click("button[type=submit]")
            page.wait_for_url("**/worklist")
            page.screenshot(path=str(args.out / "worklist.png"))
            page.set_viewport_size({"width": 1440, "height": 1500})
            page.click("text=review-case-1")
            page.wait_for_url("**/patients/*")
            page.screenshot(path=str(args.out / "patient.png"))
            if args.print_view:
                page.goto(page.url.split("?")[0] + "/print")
                page.screenshot(path=str(args.out / "print.png"), full_page=True)
            browser.close()
        server.should_exit = True
        thread.join(timeout=10)
        db.dispose()
    for name in ("worklist", "patient", "print") if args.print_view else ("worklist", "patient"):
        print(args.out / f"{name}.png")


def cohort_report(out: Path, chromium: str) -> None:
    """Generate a 2,000-patient cohort (seed 7), build its report, capture two figures."""
    cli = [str(Path(sys.executable).parent / "cart-cytopenia")]
    with tempfile.TemporaryDirectory() as tmp:
        cohort, report = Path(tmp) / "cohort", Path(tmp) / "report.html"
        generate = [*cli, "cohort", "generate", "--patients", "2000", "--seed", "7"]
        subprocess.run([*generate, "--out", str(cohort)], check=True, capture_output=True)
        subprocess.run(
            [*cli, "cohort", "report", str(cohort), "--out", str(report)],
            check=True,
            capture_output=True,
        )
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 1300, "height": 1000})
            page.goto(report.as_uri())
            for section in ("recovery", "counts"):
                target = out / f"cohort-{section}.png"
                page.locator(f"section#{section} figure").first.screenshot(path=str(target))
                print(target)
            browser.close()


if __name__ == "__main__":
    main()
