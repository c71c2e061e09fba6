"""Every timestamp form real exporters write reads to the same instant: the same requests written in
each form give the identical report (issue 12 §5). Impossible dates and times are quarantined with
the reason, never shifted to a neighbouring instant."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer.cli import main
from analyzer.dialects import _parse

UTC = dt.UTC
# (instant, model, input, output). Chosen so that a zone read wrongly moves a request to another
# hour, day or month: 23:59:59.999 on a month's last day, 00:00:00.001 on the next.
REQUESTS = [
    (dt.datetime(2026, 10, 31, 23, 59, 59, 999000, UTC), "claude-sonnet-4-5", 1000, 100),
    (dt.datetime(2026, 11, 1, 0, 0, 0, 1000, UTC), "claude-sonnet-4-5", 2000, 200),
    (dt.datetime(2026, 11, 1, 12, 30, 15, 250000, UTC), "claude-haiku-4-5", 4000, 400),
    (dt.datetime(2026, 11, 2, 5, 0, 0, tzinfo=UTC), "claude-haiku-4-5", 8000, 800),
]


def _local(t: dt.datetime, minutes: int) -> dt.datetime:
    return t.astimezone(dt.timezone(dt.timedelta(minutes=minutes)))


def _epoch_us(t: dt.datetime) -> int:
    return (t - dt.datetime(1970, 1, 1, tzinfo=UTC)) // dt.timedelta(microseconds=1)


# Each form: instant -> the text an exporter writes (millisecond instants, so every form is exact).
FORMS = {
    "Z": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z",
    "lowercase z": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%fz"),
    "+00:00": lambda t: t.isoformat(),
    "+0000": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f+0000"),
    "+00 (Postgres)": lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f+00"),
    "+05:30": lambda t: _local(t, 330).isoformat(),
    "-0800": lambda t: _local(t, -480).strftime("%Y-%m-%dT%H:%M:%S.%f%z"),
    "+14:00": lambda t: _local(t, 840).isoformat(),
    "no zone": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f"),
    "space, no zone": lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%f"),
    "space, Z": lambda t: t.strftime("%Y-%m-%d %H:%M:%S.%fZ"),
    "9 fraction digits": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.%f") + "000Z",
    "no fraction, Z": lambda t: t.strftime("%Y-%m-%dT%H:%M:%S") + "Z" if not t.microsecond else t.isoformat(),
    "epoch seconds": lambda t: f"{_epoch_us(t) // 10**6}.{_epoch_us(t) % 10**6:06d}",
    "epoch milliseconds": lambda t: str(_epoch_us(t) // 1000),
    "epoch microseconds": lambda t: str(_epoch_us(t)),
    "epoch nanoseconds": lambda t: str(_epoch_us(t) * 1000),
}


def _write(path, form: str | list[str]) -> None:
    forms = [form] * len(REQUESTS) if isinstance(form, str) else form
    df = pl.DataFrame({
        "request_id": [f"r{i}" for i in range(len(REQUESTS))],
        "timestamp": [FORMS[f](t) for f, (t, *_) in zip(forms, REQUESTS)],
        "model": [m for _, m, _, _ in REQUESTS],
        "input_tokens": [i for *_, i, _ in REQUESTS],
        "output_tokens": [o for *_, o in REQUESTS],
    })
    if path.suffix == ".csv":
        df.write_csv(path)
    else:
        df.write_ndjson(path)


def _report(path, tmp_path, *extra) -> dict:
    r = CliRunner().invoke(main, ["report", str(path), "--by", "hour,month,model", "--format", "json", "--quarantine",
                                  str(tmp_path / "q.jsonl"), *extra], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    return {k: doc[k] for k in ("rows", "totals", "accounting")} | {"notes": doc.get("notes")}


def _golden_totals(doc: dict) -> None:
    # sonnet 4.5 at $3/$15 per MTok, haiku 4.5 at $1/$5, by hand:
    # 3000*3/1e6 + 300*15/1e6 = 0.009 + 0.0045 = 0.0135; 12000*1/1e6 + 1200*5/1e6 = 0.012 + 0.006 = 0.018
    assert Decimal(doc["totals"]["cost"]) == Decimal("0.0315")
    acc = doc["accounting"]
    assert (acc["rows_read"], acc["priced"], acc["quarantined"]) == (4, 4, 0)
    # Each request in its own UTC hour (1000*3/1e6 + 100*15/1e6 = 0.0045, and so on):
    assert [(row["hour"], row["month"], row["requests"], Decimal(row["cost"])) for row in doc["rows"]] == [
        ("2026-10-31 23:00", "2026-10", 1, Decimal("0.0045")), ("2026-11-01 00:00", "2026-11", 1, Decimal("0.009")),
        ("2026-11-01 12:00", "2026-11", 1, Decimal("0.006")), ("2026-11-02 05:00", "2026-11", 1, Decimal("0.012"))]


@pytest.fixture(scope="module")
def golden(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("golden")
    _write(tmp / "z.csv", "Z")
    doc = _report(tmp / "z.csv", tmp)
    _golden_totals(doc)
    return doc


def _same(doc: dict, golden: dict) -> None:
    assert doc["rows"] == golden["rows"]
    assert doc["totals"] == golden["totals"]
    assert {k: v for k, v in doc["accounting"].items() if k != "quarantine_file"} == \
        {k: v for k, v in golden["accounting"].items() if k != "quarantine_file"}


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
@pytest.mark.parametrize("form", list(FORMS))
def test_every_form_gives_the_same_report(form, suffix, golden, tmp_path):
    path = tmp_path / f"log{suffix}"
    _write(path, form)
    _same(_report(path, tmp_path), golden)


@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_forms_mixed_in_one_file(suffix, golden, tmp_path):
    """Rows in another form than the first records' go through the slower every-form parse: same result."""
    path = tmp_path / f"mixed{suffix}"
    _write(path, ["Z", "+05:30", "epoch milliseconds", "space, no zone"])
    _same(_report(path, tmp_path), golden)
    _write(path, ["-0800", "Z", "lowercase z", "epoch nanoseconds"])
    _same(_report(path, tmp_path), golden)


def test_parquet_timestamps_in_any_zone(golden, tmp_path):
    times = [t for t, *_ in REQUESTS]
    base = pl.DataFrame({"timestamp": times, "model": [m for _, m, _, _ in REQUESTS],
                         "input_tokens": [i for *_, i, _ in REQUESTS], "output_tokens": [o for *_, o in REQUESTS]})
    for zone in ("UTC", "Asia/Kolkata", "America/Los_Angeles"):
        path = tmp_path / f"{zone.replace('/', '_')}.parquet"
        base.with_columns(pl.col("timestamp").dt.convert_time_zone(zone)).write_parquet(path)
        _same(_report(path, tmp_path), golden)
    naive = tmp_path / "naive.parquet"
    base.with_columns(pl.col("timestamp").dt.replace_time_zone(None)).write_parquet(naive)
    doc = _report(naive, tmp_path)
    _same(doc, golden)
    assert any("without a time zone are read as UTC" in n for n in doc["notes"])


def test_no_zone_is_said(tmp_path):
    path = tmp_path / "naive.csv"
    _write(path, "no zone")
    doc = _report(path, tmp_path)
    assert f"{path}: timestamps without a time zone are read as UTC" in doc["notes"]
    _write(path, "Z")
    assert not any("time zone" in n for n in _report(path, tmp_path)["notes"])


def test_date_only(tmp_path):
    path = tmp_path / "days.csv"
    path.write_text("timestamp,model,input_tokens,output_tokens\n2026-11-01,claude-haiku-4-5,1000000,0\n"
                    "2026-11-01T00:00:00Z,claude-haiku-4-5,1000000,0\n")
    doc = _report(path, tmp_path)
    assert [(r["hour"], r["requests"]) for r in doc["rows"]] == [("2026-11-01 00:00", 2)]
    assert Decimal(doc["totals"]["cost"]) == Decimal("2")


BAD = {
    "2026-02-30T00:00:00Z": "timestamp is not a real date or time (2026-02-30T00:00:00Z)",
    "2026-11-03T25:00:00Z": "timestamp is not a real date or time (2026-11-03T25:00:00Z)",
    "2026-13-01T00:00:00Z": "timestamp is not a real date or time (2026-13-01T00:00:00Z)",
    "2026-11-03T24:00:00Z": "timestamp is not a real date or time (2026-11-03T24:00:00Z)",
    "2026-11-03T14:05:60Z": "timestamp has second or minute 60 (2026-11-03T14:05:60Z)",
    "2026-11-03T14:60:00+00:00": "timestamp has second or minute 60 (2026-11-03T14:60:00+00:00)",
    "2026-11-03T14:05:00+25:00": "timestamp is not a real date or time (2026-11-03T14:05:00+25:00)",
    "2026-02-29": "timestamp is not a real date or time (2026-02-29)",
    "not-a-time": "unparsable timestamp (not-a-time)",
    "12345": "unparsable timestamp (12345)",
    "2026-11-03T14:05:09.Z": "unparsable timestamp (2026-11-03T14:05:09.Z)",
}


@pytest.mark.parametrize("first", ["2026-11-03T10:00:00Z", "2026-11-03 10:00:00+00", "1793700000"])
def test_impossible_times_are_quarantined_not_shifted(first, tmp_path):
    """Whatever form the first records set as the fast path, each bad value gets its reason."""
    path = tmp_path / "bad.csv"
    rows = [first, *BAD]
    path.write_text("timestamp,model,input_tokens,output_tokens\n"
                    + "".join(f"{t},claude-haiku-4-5,1000000,0\n" for t in rows))
    q = tmp_path / "q.jsonl"
    doc = _report(path, tmp_path, "--quarantine", str(q))
    acc = doc["accounting"]
    assert (acc["rows_read"], acc["priced"], acc["quarantined"]) == (len(rows), 1, len(BAD))
    assert Decimal(doc["totals"]["cost"]) == Decimal("1")
    reasons = {json.loads(line)["line"]: json.loads(line)["reason"] for line in q.read_text().splitlines()}
    assert reasons == {i + 3: reason for i, reason in enumerate(BAD.values())}


# -- the rule, in general: any instant, offset, separator, fraction length and zone spelling ---------

def _parse_one(text: str, fmt: str):
    f = _parse.timestamp("raw", "ts", pl.String(), fmt)
    out = _parse.frame(pl.LazyFrame({"raw": [text]}), [f], {}, {}).collect()
    assert out["_ok"][0] == (out["ts"][0] is not None)
    return out["ts"][0]


@settings(max_examples=300, deadline=None)
@given(t=st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       offset=st.integers(-14 * 4, 14 * 4).map(lambda q: q * 15), sep=st.sampled_from("Tt "),
       digits=st.integers(0, 9), zone=st.sampled_from(["Z", "z", "+HH:MM", "+HHMM", "+HH", "-00:00", "none"]),
       fast=st.booleans())
def test_any_iso_form_reads_the_instant(t, offset, sep, digits, zone, fast):
    instant = t.replace(tzinfo=UTC)
    if zone in ("Z", "z", "none", "-00:00") or (zone == "+HH" and offset % 60):
        offset = 0
    local = _local(instant, offset)
    frac = f"{local.microsecond:06d}{'000'}"[:digits]
    sign = "-" if offset < 0 else "+"
    hh, mm = divmod(abs(offset), 60)
    suffix = {"Z": "Z", "z": "z", "none": "", "+HH:MM": f"{sign}{hh:02d}:{mm:02d}", "+HHMM": f"{sign}{hh:02d}{mm:02d}",
              "+HH": f"{sign}{hh:02d}", "-00:00": "-00:00"}[zone]
    text = local.strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac}" if digits else "") + suffix
    expected = instant.replace(microsecond=int(frac.ljust(6, "0")[:6]) if digits else 0)
    fmt = _parse.fast_format([text]) if fast else _parse.PRIMARY
    assert _parse_one(text, fmt) == expected, (text, fmt)


@settings(max_examples=200, deadline=None)
@given(us=st.integers(10**14, 2**62 // 1000), unit=st.sampled_from(["s", "ms", "us", "ns"]), fast=st.booleans())
def test_any_epoch_reads_the_instant(us, unit, fast):
    text = {"s": f"{us // 10**6}.{us % 10**6:06d}", "ms": str(us // 1000), "us": str(us), "ns": str(us * 1000)}[unit]
    if unit == "ms" and len(text) > 14 or unit == "s" and len(text.split(".")[0]) > 11:
        return  # beyond the digits an epoch of that unit has (year 5138): not read as that unit
    truncated = us // 1000 * 1000 if unit == "ms" else us
    expected = dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(microseconds=truncated)
    fmt = _parse.fast_format([text]) if fast else _parse.PRIMARY
    assert _parse_one(text, fmt) == expected, (text, fmt)


@settings(max_examples=200, deadline=None)
@given(t=st.datetimes(min_value=dt.datetime(1990, 1, 1), max_value=dt.datetime(2200, 1, 1)),
       offset=st.sampled_from([0, 330, -480, 300, 840, -720]), sep=st.sampled_from("T "),
       digits=st.integers(0, 9), zone=st.sampled_from(["Z", "+HH:MM", "+HHMM", "+HH", "-00:00", "none"]))
def test_a_file_in_one_form_stays_on_the_fast_path(t, offset, sep, digits, zone):
    """Every row of a file written in one form is read by the one strict parse its first records
    chose (`first`, as cheap as the `Z` form), none by the every-form fallback; and to its instant."""
    instant = t.replace(tzinfo=UTC)
    if zone in ("Z", "none", "-00:00") or (zone == "+HH" and offset % 60):
        offset = 0
    local = _local(instant, offset)
    sign, (hh, mm) = "-" if offset < 0 else "+", divmod(abs(offset), 60)
    suffix = {"Z": "Z", "none": "", "-00:00": "-00:00", "+HH:MM": f"{sign}{hh:02d}:{mm:02d}",
              "+HHMM": f"{sign}{hh:02d}{mm:02d}", "+HH": f"{sign}{hh:02d}"}[zone]
    frac = f"{local.microsecond:06d}000"[:digits]
    texts = [(local + dt.timedelta(seconds=k)).strftime(f"%Y-%m-%d{sep}%H:%M:%S") + (f".{frac}" if digits else "")
             + suffix for k in range(3)]
    fast = _parse.timestamp("raw", "ts", pl.String(), _parse.fast_format(texts[:1])).first
    got = pl.DataFrame({"raw": texts}).select(fast.alias("ts"))["ts"].to_list()
    base = instant.replace(microsecond=int(frac.ljust(6, "0")[:6]) if digits else 0)
    assert got == [base + dt.timedelta(seconds=k) for k in range(3)], texts


@settings(deadline=None)  # (a busy machine took 300 ms for one example)
@given(ms=st.integers(10**11, 10**14 - 1))
def test_epoch_milliseconds_stay_on_the_fast_path(ms):
    """A number (JSON) or its text (CSV): both read by the fast parse, to the millisecond."""
    fast = _parse.timestamp("raw", "ts", pl.String(), _parse.fast_format([str(ms)])).first
    got = pl.DataFrame({"raw": [str(ms)]}).select(fast.alias("ts"))["ts"][0]
    assert got == dt.datetime(1970, 1, 1, tzinfo=UTC) + dt.timedelta(milliseconds=ms)


def test_fast_format_is_the_one_most_first_records_use():
    """One broken value among a file's first records does not send its every row to the slow path."""
    offset = "%Y-%m-%dT%H:%M:%S%.f%z"
    assert _parse.fast_format(["not-a-time", *["2026-11-01T00:00:00+00:00"] * 3]) == offset
    assert _parse.fast_format(["x", "1793491200000"]) == _parse.EPOCH_MS
    assert _parse.fast_format(["1793491200", "1793491200.5"]) == _parse.EPOCH_S
    assert _parse.fast_format(["2026-11-01 00:00:00.5+00"]) == "%Y-%m-%d %H:%M:%S%.f%#z"
    assert _parse.fast_format(["2026-11-01T00:00:00"]) == "%Y-%m-%dT%H:%M:%S%.f"
    assert _parse.fast_format(["x"]) == _parse.fast_format([]) == _parse.PRIMARY


def test_a_broken_first_record(golden, tmp_path):
    path = tmp_path / "broken_first.csv"
    _write(path, "+05:30")
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "r9,not-a-time,claude-haiku-4-5,1,1", *lines[1:]]) + "\n")
    doc = _report(path, tmp_path)
    assert doc["rows"] == golden["rows"] and doc["totals"] == golden["totals"]
    assert (doc["accounting"]["rows_read"], doc["accounting"]["quarantined"]) == (5, 1)


# ---------------------------------------------------------------------------------------------
# Instants a report cannot hold: year 10000 once converted to UTC (or to the report's --tz), year 0


EDGE_REASON = "timestamp is outside 0001-01-02..9999-12-30 UTC, the dates a report can hold in any zone"


@pytest.mark.parametrize("text", ["9999-12-31T23:00:00-14:00", "9999-12-31T00:00:00Z", "0000-01-01T00:00:00Z",
                                  "0001-01-01T00:00:00+14:00", "0001-01-01T23:59:59Z", "9999-12-31 10:00:00"])
@pytest.mark.parametrize("suffix", [".csv", ".jsonl"])
def test_a_time_past_year_9999_or_before_year_1_is_quarantined(tmp_path, text, suffix):
    """`check` failed with a traceback ("year 10000 is out of range") on 9999-12-31T23:00:00-14:00,
    and a FOCUS export wrote `+10000-01-01`: such rows are quarantined with the reason."""
    log = tmp_path / f"log{suffix}"
    good = "2026-11-01T10:00:00Z"
    if suffix == ".csv":
        log.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                       f"r1,{text},claude-haiku-4-5,1000,0\nr2,{good},claude-haiku-4-5,1000,0\n")
    else:
        log.write_text("".join(json.dumps({"request_id": r, "timestamp": t, "model": "claude-haiku-4-5",
                                           "input_tokens": 1000, "output_tokens": 0}) + "\n"
                               for r, t in (("r1", text), ("r2", good))))
    q = tmp_path / "q.jsonl"
    for args in (["check", str(log)], ["check", str(log), "--tz", "Pacific/Kiritimati"],
                 ["report", str(log), "--by", "day", "--tz", "Etc/GMT+12"], ["report", str(log), "--format", "focus"]):
        r = CliRunner().invoke(main, [*args, "--quarantine", str(q)])
        assert r.exit_code == 0 and "Traceback" not in r.output and "+10000" not in r.output, (args, r.output)
        [line] = [json.loads(x) for x in q.read_text().splitlines()]
        assert line["reason"] == f"{EDGE_REASON} ({text})" and line["line"] == (2 if suffix == ".csv" else 1)


def test_the_last_and_first_instants_a_report_holds_are_read(tmp_path):
    log = tmp_path / "log.csv"
    log.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                   "r1,9999-12-30T23:59:59.999999Z,claude-haiku-4-5,1000000,0\n"
                   "r2,0001-01-02T00:00:00Z,claude-haiku-4-5,1000000,0\n")
    r = CliRunner().invoke(main, ["report", str(log), "--by", "day", "--tz", "Pacific/Kiritimati", "--format", "json",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    doc = json.loads(r.stdout)
    # r2 is before Haiku 4.5 had a price: unpriced, not quarantined; r1 is priced ($1 per MTok) on the
    # last day, in Kiritimati (UTC+14).
    assert doc["accounting"]["quarantined"] == 0 and doc["accounting"]["unpriced"] == 1
    assert [(x["day"], x["cost"]) for x in doc["rows"]] == [("9999-12-31", "1.000000000000")]


def test_a_parquet_time_past_year_9999_is_quarantined(tmp_path):
    log = tmp_path / "log.parquet"
    pl.DataFrame({"request_id": ["r1", "r2"],
                  "timestamp": [dt.datetime(9999, 12, 31, 12, tzinfo=UTC), dt.datetime(2026, 11, 1, tzinfo=UTC)],
                  "model": ["claude-haiku-4-5"] * 2, "input_tokens": [1000, 1000], "output_tokens": [0, 0]}
                 ).write_parquet(log)
    q = tmp_path / "q.jsonl"
    r = CliRunner().invoke(main, ["check", str(log), "--tz", "Pacific/Kiritimati", "--quarantine", str(q)])
    assert r.exit_code == 0, r.output
    assert json.loads(q.read_text())["reason"].startswith(EDGE_REASON)
