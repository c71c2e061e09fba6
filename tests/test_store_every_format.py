"""Every format's fixture, ingested alone into a new store, reads back as a report of the same files
says: the store's rule for a record's later rows (store.SEVERAL_ROWS: `requests` 0 marks a later
row only in the formats that read a record as several rows) must agree with every dialect's, so a
format added with several rows a record and not marked `several_rows` (Dialect) fails here."""

from __future__ import annotations

import pytest

from analyzer import pipeline, store

from .conftest import ROOT

FORMATS = sorted(p for p in (ROOT / "fixtures" / "dialects").iterdir() if p.is_dir() and p.name != "custom-mapping")


@pytest.mark.parametrize("fixture", FORMATS, ids=lambda p: p.name)
def test_a_format_fixture_stored_alone_reports_what_its_logs_report(tmp_path, fixture):
    opts = pipeline.Options(batch_time="2026-11-20T10:00:00Z", quarantine=str(tmp_path / "q.jsonl"))
    logs = pipeline.analyze([str(fixture)], ["model"], opts)
    st = str(tmp_path / "st")
    store.ingest([str(fixture)], st, opts)
    stored = store.report(st, ["model"])
    assert store.status(st)["consistent"]
    assert stored.totals["cost"] == logs.totals["cost"]
    for k in ("rows_read", "priced", "unpriced", "duplicates", "repeats", "not_billable", "quarantined"):
        assert getattr(stored.accounting, k) == getattr(logs.accounting, k), k
    assert sorted(stored.rows["model"].to_list()) == sorted(logs.rows["model"].to_list())
