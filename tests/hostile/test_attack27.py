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
