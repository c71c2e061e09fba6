"""Regenerate the golden reports of the bundled sample logs: `make golden`. Review the diff before
committing: a changed golden file is a changed answer."""

from __future__ import annotations

import os
import re
from pathlib import Path

from analyzer import Options, analyze
from analyzer.writers import render

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "fixtures" / "sample"
GOLDEN = Path(__file__).resolve().parent / "golden"
# (name, --by, formats)
CASES = [
    ("by_month_model", ["month", "model"], ["table", "csv", "json", "jsonl", "markdown", "parquet"]),
    ("by_model_discount_type", ["model", "discount_type"], ["csv", "json"]),
    ("by_day_workspace_berlin", ["day", "workspace"], ["csv"]),
    ("by_component", ["model", "component"], ["csv", "table"]),
]
# Audits of fixtures/audit (logs with a day missing, an invoice with one price doubled): (name, --by, formats)
AUDIT_CASES = [
    ("audit", None, ["table", "json", "csv"]),
    ("audit_by_day_model", ["day", "model"], ["table", "markdown"]),
]
EXT = {"table": "txt", "csv": "csv", "json": "json", "jsonl": "jsonl", "markdown": "md", "parquet": "parquet"}


def build(name: str, by: list[str], quarantine: Path) -> object:
    """The report, read from the repository root by relative path, so that the file names in it are
    the same on every machine and checkout."""
    tz = "Europe/Berlin" if "berlin" in name else "UTC"
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return analyze([str(SAMPLE.relative_to(ROOT))], by, Options(tz=tz, quarantine=str(quarantine)))
    finally:
        os.chdir(cwd)


def build_audit(by: list[str] | None, quarantine: Path) -> object:
    from analyzer.audit import run

    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        return run(["fixtures/audit/logs.csv"], "fixtures/audit/cost_report.json", Options(quarantine=str(quarantine)),
                   "0.01", by)
    finally:
        os.chdir(cwd)


# The price book's version (a hash of the book's files) where a report prints it. A golden report
# holds "<version>" instead: a price for another model, a new alias or a fixed comment changes the
# hash but no golden number, and golden files must change only when a golden number does (so that
# `make golden` is never run just to accept a hash). test_golden checks the version apart.
VERSION = re.compile(r'(price book |"version": ")[0-9a-f]{12}\b')


def stable(text: str) -> str:
    """Golden text without the run-specific quarantine path and with the book's version as "<version>"."""
    text = VERSION.sub(r"\1<version>", text)
    return "\n".join(line for line in text.splitlines() if "quarantine" not in line) + "\n"


def main() -> None:
    import tempfile

    GOLDEN.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name, by, formats in CASES:
            report = build(name, by, Path(tmp) / "q.jsonl")
            for fmt in formats:
                data = render(report, fmt)
                path = GOLDEN / f"{name}.{EXT[fmt]}"
                if isinstance(data, bytes):
                    report.rows.write_parquet(path)
                else:
                    path.write_text(stable(data))
                print("wrote", path.relative_to(ROOT))
        from analyzer.audit_writers import render as render_audit

        for name, by, formats in AUDIT_CASES:
            result = build_audit(by, Path(tmp) / "q.jsonl")
            for fmt in formats:
                path = GOLDEN / f"{name}.{EXT[fmt]}"
                path.write_text(stable(render_audit(result, fmt)))
                print("wrote", path.relative_to(ROOT))


if __name__ == "__main__":
    main()
