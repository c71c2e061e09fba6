"""Attacks on what landed with held1, perf1, cc3 and attack25 (see each test).

Parquet schemas (attack25's zone check): the check took a zone Python's zoneinfo knows, and
Python knows the system's zone files, some of them no IANA zone Polars' database (chrono-tz) has:
`localtime`, `posixrules`, `Factory`, `right/UTC`, `posix/...`. And a dictionary of times in
`+05:30` is read by PyArrow as times in UTC (it rebuilds no dictionary of timestamps), while Polars
reads the Arrow schema stored in the file: each was a 167-line Rust panic naming no file, exit 2.

perf1 (cli._keep_freed_memory): a user's `_RJEM_MALLOC_CONF` equal to the arenas default was taken
for the command's own and decay added to it; with `--engine spark` the setting was inherited by
the executors' Python processes (Polars itself writes the variable back into the environment), each
of which then kept its freed memory, a cost never measured.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from click.testing import CliRunner

from analyzer.cli import main

ROWS = {"request_id": ["r1"], "model": ["claude-haiku-4-5"], "input_tokens": [10], "output_tokens": [3]}


def _parquet(tmp_path, name, timestamp):
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = tmp_path / f"{name}.parquet"
    pq.write_table(pa.table({**ROWS, "timestamp": timestamp}), log)
    return log


def _instant(zone):
    import pyarrow as pa

    return pa.array([1_791_936_000_000], pa.timestamp("ms", "UTC")).cast(pa.timestamp("ms", zone))


def _price(tmp_path, log):
    result = CliRunner().invoke(main, ["price", str(log), "-o", str(tmp_path / "o.csv"),
                                       "--quarantine", str(tmp_path / "q.jsonl")])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    return result


@pytest.mark.parametrize("zone", ["localtime", "posixrules", "Factory", "right/UTC", "posix/Asia/Kolkata"])
def test_a_zone_python_knows_and_polars_does_not_is_refused_in_one_line(tmp_path, zone):
    log = _parquet(tmp_path, "log", _instant(zone))
    result = _price(tmp_path, log)
    assert result.exit_code == 2
    (said,) = result.output.strip().splitlines()
    assert str(log) in said and "'timestamp'" in said and repr(zone) in said and "Polars failed" not in said


@pytest.mark.parametrize(("zone", "refused"), [("+05:30", True), ("Asia/Kolkata", False)])
def test_a_dictionary_of_times_in_a_fixed_offset_is_refused_a_named_zone_read(tmp_path, zone, refused):
    import pyarrow as pa

    times = pa.DictionaryArray.from_arrays(pa.array([0], pa.int32()), _instant(zone))
    log = _parquet(tmp_path, "log", times)
    result = _price(tmp_path, log)
    if not refused:
        assert result.exit_code == 0 and "priced 1" in result.output
        return
    assert result.exit_code == 2
    (said,) = result.output.strip().splitlines()
    assert str(log) in said and "'timestamp'" in said and repr(zone) in said and "Polars failed" not in said


_PROBE = ("import os, sys\nfrom analyzer.cli import main\n"
          "try:\n    main(sys.argv[1:], prog_name='llm-cost')\nexcept SystemExit:\n    pass\n"
          "print('ENV', os.environ.get('_RJEM_MALLOC_CONF'))\n")


def _allocator_after(args, given=None):
    env = {k: v for k, v in os.environ.items() if k != "_RJEM_MALLOC_CONF"}
    if given is not None:
        env["_RJEM_MALLOC_CONF"] = given
    out = subprocess.run([sys.executable, "-c", _PROBE, *args], env=env, capture_output=True, text=True, timeout=300)
    (line,) = [x for x in out.stdout.splitlines() if x.startswith("ENV ")]
    return line[4:]


def test_a_users_allocator_setting_equal_to_the_default_is_still_theirs(tmp_path):
    """`_RJEM_MALLOC_CONF=narenas:1` on 2 cores (the value cli.py sets itself) is the user's: price
    adds no decay to it."""
    arenas = f"narenas:{max(1, (os.cpu_count() or 1) // 2)}"
    log = tmp_path / "t.csv"
    log.write_text("timestamp,model,input_tokens,output_tokens\n2026-11-01T00:00:00Z,claude-sonnet-4-5,1000,100\n")
    said = _allocator_after(["price", str(log), "-o", str(tmp_path / "o.parquet"), "-q"], given=arenas)
    assert "dirty_decay_ms:-1" not in said and said.endswith(arenas)
    said = _allocator_after(["price", str(log), "-o", str(tmp_path / "o.parquet"), "-q"])
    assert said.endswith(f"{arenas},dirty_decay_ms:-1,muzzy_decay_ms:-1")  # (no setting: price's own)


def test_price_with_spark_leaves_its_executors_polars_default(tmp_path):
    """The executors' Python processes inherit the driver's environment: price --engine spark sets
    no decay for them (refused here on its --format before Spark starts; the setting is made first)."""
    log = tmp_path / "t.csv"
    log.write_text("timestamp,model,input_tokens,output_tokens\n2026-11-01T00:00:00Z,claude-sonnet-4-5,1000,100\n")
    said = _allocator_after(["price", str(log), "-o", str(tmp_path / "o.parquet"), "--engine", "spark",
                             "--format", "focus"])
    assert "dirty_decay_ms:-1" not in said


# -- held1: a link made to a checked Parquet file while it is read -------------------------------

def _log(path, n=3000, tokens=1000):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({
        "request_id": [f"req_{i:06d}" for i in range(n)],
        "timestamp": [f"2026-10-01T00:{i % 60:02d}:00Z" for i in range(n)],
        "model": ["claude-haiku-4-5"] * n,
        "input_tokens": pa.array([tokens] * n, pa.int64()),
        "output_tokens": pa.array([100] * n, pa.int64()),
    }), path, compression="NONE", use_dictionary=False, write_statistics=False)


def _after_check(monkeypatch, target, then):
    from analyzer import sources

    checked = sources.check_parquet

    def hooked(p):
        found = checked(p)
        if p == str(target):
            then(p)
        return found
    monkeypatch.setattr(sources, "check_parquet", hooked)


def test_a_hard_link_made_while_it_is_read_reads_the_checked_rows(tmp_path, monkeypatch):
    """`ln log.parquet backup/` (a snapshot by hard links) while the run reads it: the bytes are the
    checked ones; the run is refused "run again" (a link made moves the change time, as a write does),
    never priced otherwise."""
    log = tmp_path / "log.parquet"
    _log(log)
    _after_check(monkeypatch, log, lambda p: os.link(p, tmp_path / "backup.parquet"))
    r = CliRunner().invoke(main, ["report", str(log), "--format", "json", "-q"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"llm-cost: error: {log}: changed while being read (") and r.output.endswith("run again\n")


def test_a_value_rewritten_in_place_and_a_link_made_is_refused(tmp_path, monkeypatch):
    """Was: a page rewritten in place (same size, same footer), its mtime set back, and a hard link
    made (a snapshot): the change time moved with the link count, read as a rename over the file,
    and the run priced one request of 1,000,000 tokens among 3,000 of 1,000 with exit 0."""
    import struct

    import pyarrow.parquet as pq

    log = tmp_path / "log.parquet"
    _log(log)
    start = pq.ParquetFile(log).metadata.row_group(0).column(3).data_page_offset  # (input_tokens: plain int64)

    def rewritten_and_linked(p):
        st = os.stat(p)
        with open(p, "r+b") as f:
            data = f.read()
            f.seek(data.index(struct.pack("<q", 1000), start + 64))
            f.write(struct.pack("<q", 1_000_000))
        os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        os.link(p, tmp_path / "backup.parquet")
    _after_check(monkeypatch, log, rewritten_and_linked)
    r = CliRunner().invoke(main, ["report", str(log), "--format", "json", "-q"])
    assert r.exit_code == 2, r.output  # (was 0: input tokens 3,999,000 + 1,000,000)
    assert r.output.startswith(f"llm-cost: error: {log}: changed while being read (") and r.output.endswith("run again\n")


def test_int96_times_in_a_fixed_offset_are_refused_a_named_zone_read(tmp_path):
    """INT96 (Spark's and Impala's times) keeps no zone of its own: the zone is in the Arrow schema
    stored in the file, which Polars reads (and panicked on `+05:30`)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    for zone, refused in (("+05:30", True), ("Asia/Kolkata", False)):
        log = tmp_path / f"log{len(zone)}.parquet"
        times = pa.array([1_791_936_000_000], pa.timestamp("ms", "UTC")).cast(pa.timestamp("ns", zone))
        pq.write_table(pa.table({**ROWS, "timestamp": times}), log, use_deprecated_int96_timestamps=True)
        result = _price(tmp_path, log)
        if not refused:
            assert result.exit_code == 0 and "priced 1" in result.output
            continue
        assert result.exit_code == 2 and result.output.count("\n") == 1
        assert str(log) in result.output and repr(zone) in result.output



def test_a_parquet_map_column_keyed_by_integers_is_priced_as_report_prices_it(tmp_path):
    """A Parquet log (Spark writes map<int, ...> columns) with an extra column the pricing never
    reads: `report` prices its row; `price` stopped with `cannot read input: JSON Map keys must be
    String, Categorical or Enum, got i64.`, exit 2, no file named (the record's text, json_encode of
    every column, cannot hold such a map)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = tmp_path / "log.parquet"
    times = pa.array([1_791_936_000_000], pa.timestamp("ms", "UTC"))
    pq.write_table(pa.table({**ROWS, "timestamp": times,
                             "m": pa.array([[(1, 2)]], pa.map_(pa.int64(), pa.int64()))}), log)
    report = CliRunner().invoke(main, ["report", str(log), "--format", "json", "-q"])
    assert report.exit_code == 0, report.output
    result = _price(tmp_path, log)
    assert result.exit_code == 0, result.output
    assert "priced 1" in result.output


def test_maps_keyed_by_integers_at_any_depth_keep_the_record_text_of_a_quarantined_row(tmp_path):
    """A map keyed by integers inside a struct and a list, on a row quarantined (negative tokens): its
    record text in the quarantine file holds the entries as `{key, value}` structs; a map keyed by
    text stays a JSON object."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    log = tmp_path / "log.parquet"
    times = pa.array([1_791_936_000_000] * 2, pa.timestamp("ms", "UTC"))
    by_int = pa.map_(pa.int32(), pa.string())
    pq.write_table(pa.table({
        "request_id": ["r1", "r2"], "model": ["claude-haiku-4-5"] * 2, "input_tokens": [10, -5],
        "output_tokens": [3, 3], "timestamp": times,
        "s": pa.array([{"m": [(7, "x")]}] * 2, pa.struct([("m", by_int)])),
        "l": pa.array([[[(8, "y")]]] * 2, pa.list_(by_int)),
        "t": pa.array([[("k", "v")]] * 2, pa.map_(pa.string(), pa.string()))}), log)
    result = _price(tmp_path, log)
    assert result.exit_code == 0, result.output
    (quarantined,) = [json.loads(x) for x in (tmp_path / "q.jsonl").read_text().splitlines()]
    raw = json.loads(quarantined["raw"])
    assert raw["s"] == {"m": [{"key": 7, "value": "x"}]} and raw["l"] == [[{"key": 8, "value": "y"}]]
    assert raw["t"] == {"k": "v"} and raw["request_id"] == "r2"
