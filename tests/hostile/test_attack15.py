"""Attack on dedupe2 (labels.fit, pipeline._competing, engine_spark FIT/_ranked): a copy its labels
will quarantine never competes in dedupe; its valid twin is kept; every row in one bucket; the
quarantine file holds exactly the quarantined rows; `report` = the sum of `price`; both engines and
the store agree.

Tried, and held (fit is the group check's predicate, row by row, for a record of one row):
- labels.fit vs _finish_groups' checks on model/tier/speed values: NBSP, U+3000, U+2028, U+0085, tabs
  and newlines (whitespace: blank), `null` as text, zero-width and BOM characters, `Default`,
  `default`, ` default `, `STANDARD\\u00a0`, `Priority`, `FAST`, `\\u00a0fast`, `standard\\u200b`,
  bad copy first or last, fewer/equal/more tokens, in JSONL, CSV and Parquet: the same verdict each
  time (test_fit_is_the_group_check_for_every_label_value); a copy whose count and label are both
  bad is quarantined once with both reasons; --no-dedupe; a label column one file carries and
  another lacks (Polars; Spark was fixed in 69044a4).
- The store: a bad copy on night 2 of a request stored on night 1, and the reverse: the night's
  quarantined rows are never stored, so never contest (test_dedupe_labels covers one; the reverse
  and multi-step copies here).

Broke (fixed here):
- A record read as several rows (a Messages response's `usage.iterations`, a Claude Code run's
  `modelUsage`) was judged step by step on its labels: fit and the group checks run per row, while a
  record's verdict (mapped.one_verdict_per_record) saw only the dialect's `_ok`. So a copy whose first
  step had a blank model was quarantined as a record yet its later step still competed, beat its
  valid twin's step (more tokens) and was priced: the totals held a quarantined record's tokens, and
  the valid record lost a step to a "duplicate" counted nowhere. Alone, a blank later step vanished
  (its record priced without it, exit 0), and a blank first step left the later ones priced (also
  tests/hostile/test_attack14.py's strict xfail, which this fix makes pass). Now a row whose labels
  will fail is a bad row of its record: the record is quarantined whole, once, with the reason.

Broke (strict xfails, fixed since):
- A model made only of invisible format characters (U+200B, U+FEFF) was not blank: its copy
  competed and displaced its priced twin. Labels are now trimmed of Unicode White_Space, Cc and Cf
  (labels.trim), so it is a missing model.
- A tier alias was applied to the text as logged: a Messages response's `Default` tier was
  quarantined. Aliases now match the label as compared (labels.spelled).
"""

from __future__ import annotations

import json
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pytest

from analyzer import Options, analyze, price_requests, store

HAIKU = "claude-haiku-4-5"  # $1 input, $5 output per MTok
SONNET = "claude-sonnet-4-5"  # $3 input, $15 output per MTok
TS = "2026-10-08T06:00:00Z"
STREAM = Path(__file__).resolve().parents[2] / "fixtures" / "dialects" / "claude-code-stream" / "stream.jsonl"


def _step(model: str, inp: int, out: int) -> dict:
    return {"type": "message", "model": model, "input_tokens": inp, "output_tokens": out}


def _response(mid: str, steps: list[dict], tier: str | None = None) -> str:
    """A logged Messages response whose billed usage is its steps (usage.iterations)."""
    usage = {"input_tokens": 1, "output_tokens": 1, "iterations": steps, **({"service_tier": tier} if tier else {})}
    return json.dumps({"timestamp": TS, "response": {"id": mid, "type": "message", "role": "assistant",
                                                     "model": HAIKU, "content": [], "usage": usage}})


def _write(path: Path, lines: list[str]) -> str:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(x + "\n" for x in lines))
    return str(path)


def _run(tmp_path: Path, paths: list[str], **opts):
    """Report and `price` of the files: (accounting, totals, quarantine file's lines, priced rows),
    checking that both accountings agree and `report` is the sum of `price`."""
    q = tmp_path / "q.jsonl"
    rep = analyze(paths, ["model"], Options(quarantine=str(q), **opts))
    rows, acc = price_requests(paths, Options(quarantine=str(tmp_path / "q2.jsonl"), **opts))
    rows = rows.lazy().collect()
    assert acc.as_dict() | {"quarantine_file": None} == rep.accounting.as_dict() | {"quarantine_file": None}
    assert rep.accounting.balanced
    assert (rows["cost"].sum() if rows.height else D(0)) == rep.totals["cost"]
    assert rows.filter(pl.col("cost").is_not_null())["input_tokens"].sum() == rep.totals["input_tokens"]
    written = [json.loads(x) for x in q.read_text().split("\n") if x] if q.exists() else []
    assert len(written) == rep.accounting.quarantined
    return rep.accounting, rep.totals, written, rows


# --- a record of several rows: its copies compete whole, or not at all ------------------------------

# Record a (file a): Haiku steps of 100 and 1,000 input tokens (10 and 100 output): $0.00165.
# Record b, its copy (file b): a first step with a blank model, then 2,000 input tokens.
A = _response("msg_1", [_step(HAIKU, 100, 10), _step(HAIKU, 1000, 100)])
B = _response("msg_1", [_step("  ", 100, 10), _step(HAIKU, 2000, 100)])
A_COST = D("0.00165")  # (1,100 x 1 + 110 x 5) / 1e6


@pytest.mark.parametrize("order", ["valid-first", "bad-first"])
def test_a_copy_quarantined_whole_wins_none_of_its_steps(tmp_path, order):
    # Before: b's blank first step kept b from competing for the request's id, but its second step
    # (an id of its own) beat a's second step on tokens: 1 priced + 1 quarantined, yet 2,100 input
    # tokens priced: a's first step and b's second, $0.00265.
    a, b = _write(tmp_path / "a.jsonl", [A]), _write(tmp_path / "b.jsonl", [B])
    acc, totals, written, rows = _run(tmp_path, [a, b] if order == "valid-first" else [b, a])
    assert (acc.rows_read, acc.priced, acc.duplicates, acc.quarantined) == (2, 1, 0, 1)
    assert (totals["input_tokens"], totals["output_tokens"], totals["cost"]) == (1100, 110, A_COST)
    assert [(w["file"], w["line"], w["reason"]) for w in written] == [(b, 1, "missing model")]
    assert sorted(rows["input_tokens"].to_list()) == [100, 1000] and set(rows["source_file"]) == {a}


@pytest.mark.parametrize("steps,reason", [
    ([_step(HAIKU, 100, 10), _step("", 1000, 100)], "missing model"),
    ([_step(" ", 100, 10), _step(HAIKU, 1000, 100)], "missing model"),
    ([_step(HAIKU, 100, 10), _step(HAIKU, 1000, 100)], None),
], ids=["blank-later", "blank-first", "clean"])
def test_a_blank_step_quarantines_its_record_whole(tmp_path, steps, reason):
    # Before: a blank later step was quarantined as a row of no record (0 quarantined, no line, its
    # 1,000 tokens in no bucket, exit 0); a blank first step quarantined the record and left the
    # second step's 1,000 tokens priced in the totals.
    plain = _response("msg_p", [_step(SONNET, 1000, 0)])  # $0.003
    acc, totals, written, _ = _run(tmp_path, [_write(tmp_path / "m.jsonl", [plain, _response("msg_b", steps)])])
    if reason is None:
        assert (acc.priced, acc.quarantined, totals["cost"]) == (2, 0, D("0.003") + A_COST)
        return
    assert (acc.rows_read, acc.priced, acc.quarantined) == (2, 1, 1)
    assert (totals["input_tokens"], totals["cost"]) == (1000, D("0.003"))
    assert [(w["line"], w["reason"]) for w in written] == [(2, reason)]


def test_a_run_result_with_a_blank_model_is_quarantined_whole(tmp_path):
    # A Claude Code run's result reads one row per model of modelUsage: its Haiku row renamed blank.
    # Before: the Opus row priced the run, the blank row quarantined with no record (0 quarantined,
    # no line). Now the run's result is one quarantined record.
    lines = STREAM.read_text().splitlines()
    good = _write(tmp_path / "good" / "run.jsonl", lines)
    bad = _write(tmp_path / "bad" / "run.jsonl", [*lines[:-1], lines[-1].replace("claude-haiku-4-5-20251001", " ")])
    clean, clean_totals, _, _ = _run(tmp_path / "good", [good])
    acc, totals, written, _ = _run(tmp_path / "bad", [bad])
    # The result is a copy of the run's assistant lines (one request id): clean, it wins, both models
    # priced. Quarantined whole, it competes no more: the first assistant line (Opus, line 2) is the
    # request, the other a repeat. Before: the result's Opus row won, its blank Haiku row was
    # quarantined as a row of no record (0 quarantined, no line) and its 1,710 tokens were lost.
    assert (clean.rows_read, clean.priced, clean.repeats, clean.quarantined) == (3, 1, 2, 0)
    assert clean_totals["cost"] == D("0.10459775")  # (the result's own total_cost_usd)
    assert (acc.rows_read, acc.priced, acc.repeats, acc.quarantined) == (3, 1, 1, 1)
    assert (totals["input_tokens"], totals["cost"]) == (2, D("0.056444"))
    assert [(w["line"], w["reason"]) for w in written] == [(len(lines), "missing model")]


def test_the_store_agrees_on_copies_of_a_stepped_record_across_nights(tmp_path):
    # Night 1 holds a; night 2 brings b (quarantined whole: nothing of it stored or displacing a),
    # and the reverse order. The store's report is a report of its files.
    for first, second in ((A, B), (B, A)):
        root = tmp_path / ("ab" if first is A else "ba")
        n1, n2 = _write(root / "n1" / "x.jsonl", [first]), _write(root / "n2" / "y.jsonl", [second])
        st = str(root / "store")
        store.ingest([n1], st)
        store.ingest([n2], st)
        rep = store.report(st, ["model"])
        logs = analyze([n1, n2], ["model"], Options(quarantine=str(root / "q.jsonl")))
        assert rep.totals["cost"] == logs.totals["cost"] == A_COST
        assert rep.totals["input_tokens"] == logs.totals["input_tokens"] == 1100
        for k in ("rows_read", "priced", "duplicates", "quarantined"):
            assert getattr(rep.accounting, k) == getattr(logs.accounting, k), k
        assert (rep.accounting.priced, rep.accounting.quarantined) == (1, 1)


# --- one-row records: fit is the group check -----------------------------------------------------

# label -> value: whether a copy so written is quarantined (None: valid, or unpriced, so it competes)
VALUES = [
    ("model", "\u00a0", "missing model"), ("model", "\u3000", "missing model"),
    ("model", "\u2028", "missing model"), ("model", "\u0085", "missing model"),
    ("model", "\t\n", "missing model"), ("model", "null", None),
    ("service_tier", "Default", "unknown service_tier (default)"),
    ("service_tier", " default ", "unknown service_tier (default)"),
    ("service_tier", "STANDARD\u00a0", None), ("service_tier", "Priority", None),
    ("service_tier", "standard\u200b", None), ("service_tier", "\u2060standard\ufeff", None),
    ("service_tier", "stan\u200bdard", "unknown service_tier (stan\u200bdard)"),
    ("service_tier", "null", "unknown service_tier (null)"),
    ("speed", "FAST", None), ("speed", "\u00a0fast", None),
    ("speed", "standard\u200b", None), ("model", "\u200b", "missing model"),
    ("model", "\ufeff\u200d\u00ad\u202e", "missing model"), ("model", "\x00\x7f", "missing model"),
    ("model", HAIKU + "\u200b", None),
]


def _copies(fmt: str, path: Path) -> tuple[str, dict]:
    """For each VALUES entry i: id r{i}, a copy with the value (640 input tokens) and a valid one (64),
    the bad copy first on even i; then one copy with a negative count and a blank model. Returns the
    file and the expected quarantined lines -> reasons."""
    recs, expect = [], {}
    for i, (col, value, reason) in enumerate(VALUES):
        odd = {"request_id": f"r{i}", "timestamp": TS, "model": HAIKU, "service_tier": "standard",
               "speed": "standard", "input_tokens": 640, "output_tokens": 3, col: value}
        twin = {**odd, col: {"model": HAIKU}.get(col, "standard"), "input_tokens": 64}
        recs += [odd, twin] if i % 2 == 0 else [twin, odd]
        if reason:
            expect[len(recs) - (1 if i % 2 == 0 else 0)] = reason
    recs.append({"request_id": "r0", "timestamp": TS, "model": " ", "service_tier": "standard", "speed": "standard",
                 "input_tokens": -5, "output_tokens": 3})
    frame = pl.DataFrame(recs, schema={"request_id": pl.String, "timestamp": pl.String, "model": pl.String,
                                       "service_tier": pl.String, "speed": pl.String, "input_tokens": pl.Int64,
                                       "output_tokens": pl.Int64})
    out = str(path.with_suffix("." + fmt))
    if fmt == "jsonl":
        Path(out).write_text("".join(json.dumps(r) + "\n" for r in recs))
    elif fmt == "csv":
        frame.write_csv(out)
    else:
        frame.write_parquet(out)
    return out, expect


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_fit_is_the_group_check_for_every_label_value(tmp_path, fmt):
    path, expect = _copies(fmt, tmp_path / "log")
    acc, totals, written, rows = _run(tmp_path, [path])
    n_bad = len(expect)
    # every quarantined copy's twin is priced (64 tokens); every other pair keeps its fuller copy (640)
    assert (acc.rows_read, acc.quarantined) == (2 * len(VALUES) + 1, n_bad + 1)
    assert (acc.priced + acc.unpriced, acc.duplicates) == (len(VALUES), len(VALUES) - n_bad)
    # (the `null` model's copy wins its pair, unpriced: its tokens are in no total)
    assert acc.unpriced == 1 and totals["input_tokens"] == 64 * n_bad + 640 * (len(VALUES) - n_bad - 1)
    line = 2 if fmt == "csv" else 1  # (a CSV's header is its first line)
    got = {w["line"]: w["reason"] for w in written}
    last = got.pop(max(got))
    assert "input_tokens" in last and "missing model" in last  # one line, both reasons
    assert got == {k + line - 1: v for k, v in expect.items()}


def test_no_dedupe_keeps_each_copy_in_its_own_bucket(tmp_path):
    lines = [json.dumps({"request_id": "r1", "timestamp": TS, "model": m, "input_tokens": n, "output_tokens": 3})
             for m, n in (("", 640), (HAIKU, 64), (HAIKU, 64))]
    acc, totals, written, _ = _run(tmp_path, [_write(tmp_path / "l.jsonl", lines)], dedupe=False)
    assert (acc.priced, acc.duplicates, acc.quarantined, totals["input_tokens"]) == (2, 0, 1, 128)
    assert [w["line"] for w in written] == [1]


# --- invisible labels; a format's aliases as labels are compared ------------------------------------

@pytest.mark.parametrize("invisible", ["\u200b", "\ufeff", "\u200b \u200b", "\u2060\u00ad\u200e\x1f"])
def test_an_invisible_model_is_a_missing_model(tmp_path, invisible):
    lines = [json.dumps({"request_id": "r1", "timestamp": TS, "model": m, "input_tokens": 64, "output_tokens": 3})
             for m in (invisible, HAIKU)]
    acc, totals, written, _ = _run(tmp_path, [_write(tmp_path / "l.jsonl", lines)])
    assert (acc.priced, acc.unpriced, acc.duplicates, acc.quarantined) == (1, 0, 0, 1)
    assert totals["cost"] == D("0.000079") and [w["reason"] for w in written] == ["missing model"]


@pytest.mark.parametrize("tier", ["Default", " default", "\u200bDEFAULT\u00a0"])
def test_a_tier_alias_holds_whatever_its_case(tmp_path, tier):
    acc, totals, written, _ = _run(tmp_path, [_write(tmp_path / "m.jsonl", [_response("msg_t", [_step(HAIKU, 100, 10)],
                                                                                       tier=tier)])])
    assert (acc.priced, acc.quarantined, totals["cost"]) == (1, 0, D("0.00015")) and not written


# --- both engines --------------------------------------------------------------------------------

def test_spark_agrees_on_a_copy_quarantined_whole(tmp_path):
    pytest.importorskip("pyspark")
    from analyzer import engine_spark
    from analyzer.writers import render

    # the stepped copies, and every one-row label value with its twin
    copies, bad = _copies("jsonl", tmp_path / "c")
    paths = [_write(tmp_path / "a.jsonl", [A]), _write(tmp_path / "b.jsonl", [B]), copies,
             _write(tmp_path / "m.jsonl", [_response("msg_t", [_step(HAIKU, 100, 10)], tier=" Default")])]
    session = engine_spark.session("local[2]")
    try:
        out = []
        for run in (analyze, engine_spark.analyze):
            q = tmp_path / f"q{len(out)}.jsonl"
            rep = run(paths, ["model"], Options(quarantine=str(q)))
            out.append((json.loads(render(rep, "json").replace(str(q), "<q>")), q.read_text()))
    finally:
        session.stop()
    assert out[0] == out[1]
    assert out[0][0]["accounting"]["quarantined"] == 1 + len(bad) + 1 == 1 + 12 + 1
    assert "msg_t" not in out[1][1]  # (its ` Default` tier is its format's alias of standard in Spark too)
