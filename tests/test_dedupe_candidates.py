"""Duplicate candidates found in several hash-range passes (bounded memory) are those one pass finds."""

from __future__ import annotations

import json

import polars as pl
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import dedupe
from analyzer.cli import main


@settings(max_examples=60, deadline=None)
@given(ids=st.lists(st.one_of(st.none(), st.integers(0, 40).map(lambda i: f"req_{i}")), max_size=200),
       per_pass=st.integers(1, 50))
def test_passes_find_the_same_candidates(ids, per_pass):
    lf = pl.LazyFrame({"request_id": ids}, schema={"request_id": pl.String})
    one = dedupe.candidates(lf, expected_rows=len(ids))
    many = dedupe.candidates(lf, expected_rows=len(ids), ids_per_pass=per_pass)
    repeated = {i for i in ids if i is not None and ids.count(i) > 1}
    assert sorted(one.to_list()) == sorted(many.to_list())
    assert len(many) == len(repeated)  # (a 64-bit collision among 41 ids: never)


def test_spooled_json_in_many_passes_gives_the_same_report(tmp_path, monkeypatch):
    """A JSONL run hashes its spooled ids in passes of SPOOLED_IDS_PER_PASS: with tiny passes (many
    of them) the duplicates and the total are those of one pass."""
    rows = [{"request_id": f"r{i % 7}", "timestamp": f"2026-11-0{1 + i % 3}T10:00:00Z", "model": "claude-haiku-4-5",
             "input_tokens": 1_000_000, "output_tokens": i} for i in range(20)]
    path = tmp_path / "log.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))

    def report() -> dict:
        r = CliRunner().invoke(main, ["report", str(path), "--by", "day", "--format", "json", "--quarantine",
                                      str(tmp_path / "q.jsonl")], catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    one = report()
    monkeypatch.setattr(dedupe, "SPOOLED_IDS_PER_PASS", 2)
    calls = []
    real = dedupe.candidates
    monkeypatch.setattr(dedupe, "candidates", lambda *a, **k: calls.append(k) or real(*a, **k))
    many = report()
    assert calls and calls[0]["ids_per_pass"] == 2
    assert (many["rows"], many["totals"], many["accounting"]) == (one["rows"], one["totals"], one["accounting"])
    # 7 ids, each kept once: the copy with the most output tokens (i = 13..19)
    assert one["accounting"]["duplicates"] == 13
    assert one["totals"]["output_tokens"] == sum(range(13, 20))


def test_large_inputs_read_the_duplicated_rows_apart_and_report_the_same(tmp_path, monkeypatch):
    """Above ONE_READ_MAX_ROWS the sums and the rows of duplicated ids are two reads (one shared
    read buffered what one plan had not consumed: 10M JSONL requests peaked at 2.5 GiB); both ways
    give the same report, duplicates and accounting, in CSV and JSONL, across two files."""
    from analyzer import pipeline

    rows = [{"request_id": f"r{i % 9}", "timestamp": f"2026-11-0{1 + i % 3}T10:00:00Z",
             "model": ["claude-haiku-4-5", "claude-sonnet-4-5"][i % 2], "input_tokens": 1000 + i,
             "output_tokens": i, "workspace": f"w{i % 2}"} for i in range(30)]
    (tmp_path / "a.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows[:15]))
    pl.DataFrame(rows[10:]).write_csv(tmp_path / "b.csv")

    def report() -> dict:
        r = CliRunner().invoke(main, ["report", str(tmp_path / "a.jsonl"), str(tmp_path / "b.csv"), "--by",
                                      "day,workspace", "--format", "json", "--quarantine", str(tmp_path / "q.jsonl")],
                               catch_exceptions=False)
        assert r.exit_code == 0, r.output
        return json.loads(r.stdout)

    reads = []
    one_read = pipeline._one_read
    monkeypatch.setattr(pipeline, "_one_read", lambda loaded: reads.append(one_read(loaded)) or reads[-1])
    shared = report()
    monkeypatch.setattr(pipeline, "ONE_READ_MAX_ROWS", 0)
    apart = report()
    assert reads == [True, False]
    assert shared == apart
    # 35 rows read (rows 10-14 are in both files), 9 ids: each kept once, the copy with the most
    # tokens (rows 21..29)
    assert apart["accounting"]["duplicates"] == 35 - 9
    assert apart["totals"]["output_tokens"] == sum(range(21, 30))
