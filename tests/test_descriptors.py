"""Descriptors opened again by their /proc/self/fd/N name (an output's unnamed file, a checked
Parquet file held for Polars) are kept out of reach of a stray close (analyzer.descriptors).

Was: the numbers were the lowest free ones. Something in the process closing such a number by
mistake freed it; the next file opened took it, and the output was written over that file by its
name. CI saw it once: polars/lazyframe/frame.py in the virtualenv replaced by a `price` CSV, and 62
tests after it failing on the import."""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest

from analyzer import descriptors, sources, writers
from analyzer.errors import OutputError
from analyzer.held import holding_parquet

pytestmark = pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="names descriptors in /proc")

ROWS = pl.DataFrame({"request_id": ["r1", "r2"], "input_tokens": [1000, 2000]})


def _lowest_free() -> int:
    """The number the next file opened gets."""
    fd = os.open("/dev/null", os.O_RDONLY)
    os.close(fd)
    return fd


def test_a_stray_close_cannot_turn_an_output_onto_another_file(tmp_path):
    victim = tmp_path / "frame.py"
    victim.write_text("ORIGINAL\n")
    low = _lowest_free()  # (the number the output's unnamed file was given before it was moved)

    def write(tmp: str) -> None:
        with contextlib.suppress(OSError):
            os.close(low)  # (some library closing a number it no longer owns)
        opened = os.open(victim, os.O_RDONLY)  # (an import, a traceback's source line: the lowest number)
        try:
            ROWS.write_csv(tmp)
        finally:
            os.close(opened)

    writers.atomic_write(str(tmp_path / "rows.csv"), write)
    assert victim.read_text() == "ORIGINAL\n"
    assert (tmp_path / "rows.csv").read_text() == "request_id,input_tokens\nr1,1000\nr2,2000\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["frame.py", "rows.csv"]


def test_an_output_whose_descriptor_was_given_to_another_file_is_not_put_in_place(tmp_path):
    """The move is a precaution, not a proof: should the number itself be closed and taken, the run
    says so and puts nothing in place (the other file's bytes are not made the output)."""
    victim = tmp_path / "other.txt"
    victim.write_text("ORIGINAL\n")
    (tmp_path / "rows.csv").write_text("last night's\n")

    def write(tmp: str) -> None:
        n = int(tmp.rsplit("/", 1)[1])
        assert n >= descriptors.floor()
        opened = os.open(victim, os.O_RDONLY)
        os.dup2(opened, n)  # (closed, and the number given to another file)
        os.close(opened)
        ROWS.write_csv(tmp)

    with pytest.raises(OutputError, match="descriptor was closed by another part of the process"):
        writers.atomic_write(str(tmp_path / "rows.csv"), write)
    assert (tmp_path / "rows.csv").read_text() == "last night's\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["other.txt", "rows.csv"]


def test_a_held_parquet_file_is_read_whatever_takes_the_numbers_below(tmp_path):
    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    ROWS.write_parquet(a)
    pl.DataFrame({"request_id": ["x"], "input_tokens": [7]}).write_parquet(b)
    with holding_parquet() as held:
        low = _lowest_free()
        checked = sources.check_parquet(str(a))
        assert int(checked.source.rsplit("/", 1)[1]) >= descriptors.floor()
        with contextlib.suppress(OSError):
            os.close(low)
        with open(b, "rb"):  # (takes the lowest number)
            assert checked.held.scan().collect().equals(ROWS)
        held.verify()


def test_a_low_limit_on_open_files_still_moves_them_and_a_full_one_leaves_them(tmp_path):
    """Under `ulimit -n 40` the numbers start at 30; with every number at or above it taken, a
    descriptor stays where it is (the run goes on as before)."""
    script = f"""
import os, resource
resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
from analyzer import descriptors
assert descriptors.floor() == 30, descriptors.floor()
fd = descriptors.out_of_reach(os.open({str(tmp_path)!r}, os.O_RDONLY))
assert fd == 30, fd
taken = [os.dup2(fd, n) for n in range(31, 40)]
other = os.open({str(tmp_path)!r}, os.O_RDONLY)
assert descriptors.out_of_reach(other) == other and other < 30
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60,
                       cwd=Path(__file__).resolve().parents[1])
    assert r.stdout == "ok\n", r.stderr


def test_a_price_output_is_written_through_a_number_out_of_reach(tmp_path, monkeypatch):
    seen = []
    real = writers._link_into_place

    def spied(fd, directory, path):
        seen.append(fd)
        return real(fd, directory, path)
    monkeypatch.setattr(writers, "_link_into_place", spied)
    from click.testing import CliRunner

    from analyzer.cli import main

    log = Path(__file__).resolve().parents[1] / "fixtures" / "sample" / "october.csv"
    r = CliRunner().invoke(main, ["price", str(log), "-o", str(tmp_path / "rows.csv"), "-q",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    assert seen and all(fd >= descriptors.floor() for fd in seen)
