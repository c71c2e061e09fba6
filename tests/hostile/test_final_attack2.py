"""Attacks on the day's price and store changes (integer cost steps, money written without a cast
to text, per-day summary windows, compact summing a merged file's summary from its sources', a
month packed into several merged files). None of these broke them; each pins what was tried so a
regression shows: hand-computed Decimal costs at the count limits, price rows summing to the
report, byte-stable outputs across slice lengths, and store reports that are the same from
summaries, from rows, after a compaction that splits months, and at every kept --version."""

from __future__ import annotations

import csv
import json
import shutil
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from analyzer import pipeline, store, writers
from analyzer.cli import main
from analyzer.errors import UnknownKeys

COLS = ("request_id,timestamp,model,service_tier,input_tokens,output_tokens,cache_read_tokens,"
        "cache_write_5m_tokens,cache_write_1h_tokens,web_search_requests,reported_cost\n")
T = 10**12  # _parse.MAX_COUNT: the largest count read; one more is quarantined
LOG = COLS + "\n".join([
    "r0,2026-03-10T10:00:00Z,claude-sonnet-4-5,standard,0,0,0,0,0,0,",
    "r1,2026-03-10T10:00:01Z,claude-sonnet-4-5,standard,1,1,1,1,1,1,0.000001",
    f"r2,2026-03-10T10:00:02Z,claude-sonnet-4-5,batch,{T},{T},{T},{T},{T},{T},",
    f"r3,2026-03-10T10:00:03Z,claude-opus-4-5,standard,{T - 1},1,0,0,0,0,1e2",
    "r4,2026-03-10T10:00:04Z,gpt-nope,standard,5,5,0,0,0,0,",
    "r5,2026-03-10T10:00:05Z,claude-sonnet-4-5,standard,200001,7,0,0,0,0,-0.5",
    f"r6,2026-03-10T10:00:06Z,gpt-4o,batch,{T},1,0,0,0,0,",
    "r7,2026-03-10T23:59:59.999999Z,claude-sonnet-4-5,priority,3.0,3,3,3,3,0,",
    "r8,2026-03-10T23:59:59Z,claude-sonnet-4-5,standard,1.5,3,3,3,3,0,",
    "r9,2026-03-11T00:00:00+05:30,claude-haiku-4-5,standard,1e3,3,3,3,3,0,0.1234567890123456789",
    f"rA,2026-03-10T10:00:07Z,claude-sonnet-4-5,standard,{T + 1},1,0,0,0,0,",
    f"rB,2026-03-10T10:00:08Z,claude-sonnet-4-5,standard,{2**53 + 1},1,0,0,0,0,",
]) + "\n"

M = Decimal(10) ** -6  # $ per MTok -> $ per token
# Hand-computed from the price book's list rates ($/MTok; web search $10 per 1,000):
COST = {
    "r0": Decimal(0),
    # sonnet 4.5: 3 in + 15 out + 0.3 read + 3.75 5m + 6 1h, and one search
    "r1": (3 + 15 + Decimal("0.3") + Decimal("3.75") + 6) * M + Decimal("0.01"),
    # batch and long context (prompt > 200K): half of 6 / 22.5 / 0.6 / 7.5 / 12; search not halved
    "r2": T * (3 + Decimal("11.25") + Decimal("0.3") + Decimal("3.75") + 6) * M + T // 1000 * 10,
    "r3": (T - 1) * 5 * M + 25 * M,  # opus 4.5: 5 in, 25 out
    "r5": 200001 * 6 * M + 7 * Decimal("22.5") * M,  # sonnet 4.5 long context: 6 in, 22.5 out
    "r6": T * Decimal("1.25") * M + 5 * M,  # gpt-4o batch: half of 2.5 in, 10 out
    "r7": 3 * (3 + 15 + Decimal("0.3") + Decimal("3.75") + 6) * M,  # priority at list rates
    "r9": (1000 * 1 + 3 * (5 + Decimal("0.1") + Decimal("1.25") + 2)) * M,  # haiku 4.5
}


def _run(*args) -> None:
    r = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    assert r.exit_code == 0, r.output


def test_price_rows_at_the_count_limits_are_the_hand_computed_costs_and_sum_to_the_report(tmp_path):
    log = tmp_path / "a.csv"
    log.write_text(LOG)
    _run("price", log, "-o", tmp_path / "p.csv", "-q", "--quarantine", tmp_path / "q.jsonl")
    rows = {r["request_id"]: r for r in csv.DictReader((tmp_path / "p.csv").open())}
    assert {k: Decimal(rows[k]["cost"]) for k in COST} == COST
    assert rows["r4"]["cost"] == "" and rows["r4"]["unpriced_reason"] == "unknown model: gpt-nope"
    assert rows["r9"]["reported_cost"] == "0.123456789012"  # 12 places, half-even
    quarantined = [json.loads(x)["raw"] for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert sorted(json.loads(x)["request_id"] for x in quarantined) == ["r8", "rA", "rB"]

    _run("report", log, "-o", tmp_path / "r.json", "-q", "--quarantine", tmp_path / "q2.jsonl")
    rep = json.loads((tmp_path / "r.json").read_text())
    for col in ("cost", "list_cost", "savings", "reported_cost", "cost_input", "cost_output",
                "cost_cache_read", "cost_cache_write_5m", "cost_cache_write_1h", "cost_web_search"):
        assert sum((Decimal(r[col]) for r in rows.values() if r[col]), Decimal(0)) == Decimal(rep["totals"][col])
    acc = rep["accounting"]
    assert (acc["rows_read"], acc["priced"], acc["unpriced"], acc["quarantined"]) == (12, 8, 1, 3)


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "parquet"])
def test_price_output_is_the_same_bytes_for_every_slice_length(tmp_path, monkeypatch, fmt):
    log = tmp_path / "a.csv"
    log.write_text(LOG)
    outs = set()
    for length in (None, 1, 2, 7):
        monkeypatch.setattr(writers, "SLICE_ROWS", length)
        out = tmp_path / f"p{length}.{fmt}"
        _run("price", log, "-o", out, "-q", "--quarantine", tmp_path / "q.jsonl")
        outs.add(out.read_bytes())
    assert len(outs) == 1


# ----------------------------------------------------------------------------------------------
# The store: nights crossing hours, days, months, a year and DST, repeats, a late new column

HEAD = "request_id,timestamp,model,service_tier,input_tokens,output_tokens,cache_read_tokens,reported_cost"
STAMPS = ["2026-03-08T01:30:00Z", "2026-03-08T06:59:59Z", "2026-03-08T07:00:00Z", "2026-03-31T23:59:59.999999Z",
          "2026-04-01T00:00:00Z", "2026-10-31T23:30:00Z", "2026-11-01T06:30:00Z", "2026-12-31T23:59:59Z",
          "2027-01-01T00:00:00Z"]
MODELS = ["claude-sonnet-4-5", "claude-opus-4-5", "gpt-4o", "gpt-nope"]
TIERS = ["standard", "batch", "priority", ""]
COUNTS = [0, 1, 999_999, 200_001, T]
REPORTED = ["", "0", "0.000000000001", "12.5"]


def _nights(tmp_path: Path) -> Path:
    st = tmp_path / "store"
    k = 0
    for n in range(5):
        lines = [HEAD + (",workspace" if n >= 3 else "")]  # a column that appears on the fourth night
        for _ in range(14):
            k += 1
            line = (f"r{(k * 7) % 45},{STAMPS[k % len(STAMPS)]},{MODELS[k % 4]},{TIERS[(k // 4) % 4]},"
                    f"{COUNTS[k % 5]},{COUNTS[(k // 5) % 5]},{COUNTS[(k // 2) % 5]},{REPORTED[(k // 3) % 4]}")
            lines.append(line + ("," + ["", "ws-a", "ws-b"][k % 3] if n >= 3 else ""))
        night = tmp_path / f"n{n}.csv"
        night.write_text("\n".join(lines) + "\n")
        store.ingest([str(night)], str(st))
    return st


CASES = [(["model"], {}), (["day", "model"], {"tz": "America/New_York"}), (["hour"], {"tz": "Asia/Kolkata"}),
         (["month", "workspace"], {"tz": "Pacific/Chatham"}), (["week", "discount_type"], {}),
         (["block"], {}), (["day"], {"tz": "America/New_York", "since": "2026-03-08", "until": "2026-11-01"})]


def _reports(st: Path, version: int | None = None) -> list[dict]:
    out = []
    for by, opts in CASES:
        try:
            doc = json.loads(writers.render(store.report(str(st), by, pipeline.Options(**opts), version=version),
                                            "json"))
        except UnknownKeys as e:  # (--by workspace before the night that brought the column)
            out.append({"error": str(e)})
            continue
        doc.pop("notes")
        doc.pop("price_book")  # (names the store's path)
        out.append(doc)
    return out


def test_store_reports_are_the_same_from_summaries_from_rows_and_after_a_compaction_that_splits_months(
        tmp_path, monkeypatch):
    st = _nights(tmp_path)
    last = store.status(str(st))["version"]
    want = _reports(st)
    assert want[0]["accounting"]["balanced"]
    shutil.move(st / store.SUMMARY, tmp_path / "summaries")
    assert _reports(st) == want
    shutil.move(tmp_path / "summaries", st / store.SUMMARY)
    at = [_reports(st, v) for v in range(last + 1)]

    merged = []
    real = store._merged_from
    monkeypatch.setattr(store, "_merged_from", lambda *a: merged.append(real(*a)) or merged[-1])
    monkeypatch.setattr(store, "COMPACT_TARGET", 60_000)  # (small: some months packed into several files)
    store.compact(str(st))
    assert merged and any(len(srcs) > 1 for srcs in merged[0].values())  # summed from the sources' summaries
    assert _reports(st) == want
    assert [_reports(st, v) for v in range(len(at))] == at  # time travel past the compaction
    shutil.move(st / store.SUMMARY, tmp_path / "summaries")
    assert _reports(st) == want


# ----------------------------------------------------------------------------------------------
# Decimal counts in a Parquet log


def test_a_parquet_decimal_count_a_hair_above_a_whole_number_is_quarantined_not_truncated(tmp_path):
    # 1.00000000000000000001 is 1.0 as a float: judged by the float alone it passed as whole and
    # its cast to an integer counted 1 token, where the same text in a CSV is quarantined.
    import datetime as dt

    import polars as pl

    counts = pl.Series([Decimal("1.00000000000000000001"), Decimal("2.5"), Decimal("3")], dtype=pl.Decimal(38, 20))
    pl.DataFrame({"request_id": ["a", "b", "c"], "timestamp": [dt.datetime(2026, 3, 10, tzinfo=dt.UTC)] * 3,
                  "model": ["claude-sonnet-4-5"] * 3, "input_tokens": counts, "output_tokens": [1, 1, 1]},
                 ).write_parquet(tmp_path / "d.parquet")
    _run("report", tmp_path / "d.parquet", "-o", tmp_path / "r.json", "-q", "--quarantine", tmp_path / "q.jsonl")
    rep = json.loads((tmp_path / "r.json").read_text())
    assert rep["totals"]["input_tokens"] == 3
    assert Decimal(rep["totals"]["cost"]) == (3 * 3 + 15) * M  # only c: 3 in, 1 out
    reasons = [json.loads(x)["reason"] for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert reasons == ["input_tokens is not a whole number (1.00000000000000000001)",
                       "input_tokens is not a whole number (2.50000000000000000000)"]
