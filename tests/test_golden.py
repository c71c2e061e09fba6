"""Golden reports of the bundled sample logs, in every output format (`make golden` regenerates)."""

from __future__ import annotations

import re

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from analyzer import load_price_book
from analyzer.writers import render

from .make_golden import AUDIT_CASES, CASES, EXT, GOLDEN, build, build_audit, stable


@pytest.mark.parametrize("name,by,fmt", [(n, b, f) for n, b, fs in CASES for f in fs])
def test_golden(name, by, fmt, tmp_path):
    report = build(name, by, tmp_path / "q.jsonl")
    path = GOLDEN / f"{name}.{EXT[fmt]}"
    if fmt == "parquet":
        assert_frame_equal(report.rows, pl.read_parquet(path))
    else:
        assert stable(render(report, fmt)) == path.read_text(), f"{path.name} differs; run `make golden` and review"


@pytest.mark.parametrize("name,by,fmt", [(n, b, f) for n, b, fs in AUDIT_CASES for f in fs])
def test_golden_audit(name, by, fmt, tmp_path):
    from analyzer.audit_writers import render as render_audit

    path = GOLDEN / f"{name}.{EXT[fmt]}"
    text = stable(render_audit(build_audit(by, tmp_path / "q.jsonl"), fmt))
    assert text == path.read_text(), f"{path.name} differs; run `make golden` and review"


def test_sample_accounting_balances(tmp_path):
    report = build("by_month_model", ["month", "model"], tmp_path / "q.jsonl")
    a = report.accounting
    assert (a.rows_read, a.priced, a.unpriced, a.duplicates, a.quarantined) == (25, 19, 1, 1, 4)
    assert a.balanced
    assert a.unpriced_models == {"claude-sonnett-5-5": 1}
    assert "did you mean claude-sonnet-5-5" in a.unpriced_reasons["claude-sonnett-5-5"]


def test_golden_files_hold_no_price_book_version():
    # A hash in a golden file would churn on every price change; the version is checked below instead.
    version = load_price_book([]).version
    for path in GOLDEN.iterdir():
        if path.suffix != ".parquet":
            text = path.read_text()
            assert version not in text and not re.search(r'(price book |"version": ")[0-9a-f]{12}', text), path.name


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_reports_print_the_price_book_version(fmt, tmp_path):
    # The golden files hold "<version>": here the real one, of the book the report was priced with.
    version = load_price_book([]).version
    report = build("by_month_model", ["month", "model"], tmp_path / "q.jsonl")
    assert report.book.version == version
    text = render(report, fmt)
    assert (f'"version": "{version}"' if fmt == "json" else f"price book {version};") in text
    assert "<version>" not in text


@pytest.mark.parametrize("fmt", ["table", "markdown", "json"])
def test_audits_print_the_price_book_version(fmt, tmp_path):
    from analyzer.audit_writers import render as render_audit

    version = load_price_book([]).version
    text = render_audit(build_audit(None, tmp_path / "q.jsonl"), fmt)
    assert (f'"version": "{version}"' if fmt == "json" else f"price book {version};") in text
