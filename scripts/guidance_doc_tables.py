"""Rewrite the generated parts of docs/guidance.md from the guidance tables.

    .venv/bin/python scripts/guidance_doc_tables.py

The "Thresholds and conventions table" section and the recommendation list under
"Recommendations" are generated from guidance/tables/*.toml; the prose around them is not.
tests/guidance/test_docs_guidance.py fails when they disagree.
"""

from __future__ import annotations

import re
from pathlib import Path

from cart_cytopenia.guidance import catalogue
from cart_cytopenia.guidance.spec import thresholds

DOC = Path(__file__).resolve().parents[1] / "docs" / "guidance.md"
HEADINGS = {
    "differential": "Differential",
    "workup": "Work-up",
    "management": "Management",
    "prophylaxis": "Prophylaxis",
    "alert": "Alerts",
}


def thresholds_section() -> str:
    t = thresholds()
    lines = [
        "## Thresholds and conventions table",
        "",
        f"`guidance/tables/thresholds.toml` ({t.meta.label}). Institutional values are in the "
        "settings instead.",
        "",
        "| name | value | unit | source |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| `{x.name}` | {x.value:g} | {x.unit} | {x.source} |" for x in t.thresholds.values()
    ]
    weights = ", ".join(f"{k} {v}" for k, v in t.weights.items())
    lines += [
        "",
        f"Differential weights: {weights}. Phase priors (early / prolonged / late):",
        "",
        "| cause | early | prolonged | late |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {c} | {p['early']} | {p['prolonged']} | {p['late']} |"
        for c, p in t.phase_priors.items()
    ]
    lines += [
        "",
        "Myeloid lesions (regular expressions): " + ", ".join(f"`{p}`" for p in t.myeloid_lesions),
    ]
    lines += ["", f"Source: {t.myeloid_lesions_source}", ""]
    return "\n".join(lines)


def recommendations_list() -> str:
    out: list[str] = []
    for kind, heading in HEADINGS.items():
        out += [f"### {heading}", ""]
        for s in catalogue():
            if s.kind == kind:
                flag = " *(speculative)*" if s.speculative else ""
                out.append(f"- `{s.id}` — **{s.title}**{flag}. {s.trigger}")
        out.append("")
    return "\n".join(out)


def main() -> None:
    text = DOC.read_text(encoding="utf-8")
    text = re.sub(
        r"## Thresholds and conventions table\n.*?(?=\n## Recommendations)",
        lambda _: thresholds_section(),
        text,
        flags=re.S,
    )
    text = re.sub(
        r"### Differential\n.*?(?=\n## |\Z)",
        lambda _: recommendations_list().rstrip("\n") + "\n",
        text,
        flags=re.S,
    )
    DOC.write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
