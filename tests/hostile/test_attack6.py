"""Second reading of the session since 6af05b9 (ingest3: a month left behind summarized by a worker
while the night is priced; key counts in 1 MiB blocks; the count texts' two-step search; the lead's
key-check fixes). Each test is an input or a moment where a command's answer differed from the one
it must give; each failed before its fix (or is marked xfail, strict, with why)."""

from __future__ import annotations

import pytest

from analyzer import store

from ..test_store import _rows_report, json_report, log, req

# ----------------------------------------------------------------------------------------------
# An interrupt (Ctrl-C, cron's SIGTERM) that lands after an ingest's commit, before the run has
# noted it, must not remove the files that commit added.


@pytest.mark.parametrize("first", [False, True])
@pytest.mark.parametrize("moment", ["_checkpoint", "_trace"])
def test_an_interrupt_just_after_the_commit_leaves_the_committed_files(tmp_path, monkeypatch, moment, first):
    # The month files are committed by _append; `frame = None` (ingest) says so only after
    # _write_rows has read the table again (and _append has traced the commit). A KeyboardInterrupt
    # (or the SystemExit of SIGTERM) in between reached ingest's `finally`, which removed the
    # files, and their summaries, of a version the table now names: every later report failed on
    # the missing files (store corruption; a repair had to drop the night).
    st = tmp_path / "store"
    earlier = log(tmp_path / "n1" / "a.parquet", [req("a", "2026-08-03"), req("b", "2026-09-04")])
    if not first:  # (else the interrupted commit is the store's first)
        store.ingest([str(earlier)], str(st))
    night = log(tmp_path / "n2" / "a.parquet", [req("c", "2026-09-05", inp=7), req("d", "2026-10-06", inp=9)])
    clean = tmp_path / "clean"
    for f in sorted(tmp_path.glob("n*/a.parquet")):
        store.ingest([str(f)], str(clean))
    real = getattr(store, moment)

    def interrupted(*a, **k):
        if moment == "_checkpoint" or a[:1] == ("commit",):
            raise KeyboardInterrupt
        return real(*a, **k)

    monkeypatch.setattr(store, moment, interrupted)
    with pytest.raises(KeyboardInterrupt):
        store.ingest([str(night)], str(st))
    monkeypatch.setattr(store, moment, real)
    s = store.status(str(st))
    assert not s["damaged_parts"] and not s["uncommitted"]
    # The night is committed; its record is written by the next run (as after a kill -9 there).
    store.ingest([str(earlier), str(night)], str(st))
    for by in (("month", "model"), ("day", "workspace")):
        assert json_report(st, by) == json_report(clean, by) == _rows_report(st, by)


def test_ctrl_c_inside_polars_python_code_is_an_interrupt_not_a_traceback(tmp_path, monkeypatch):
    # Found by sending SIGINT to `ingest` at random moments (1 run in 6): Polars calling Python for
    # a plan (polars/datatypes/classes.py's __init__) when Ctrl-C lands turns the KeyboardInterrupt
    # into a Rust panic, pyo3's PanicException (a BaseException): the user got its traceback and
    # exit 1, where Ctrl-C anywhere else says `llm-cost: interrupted`, exit 130.
    import polars as pl
    from click.testing import CliRunner

    from analyzer.cli import main

    def interrupted(*a, **k):
        raise pl.exceptions.PanicException(
            "called `Result::unwrap()` on an `Err` value: PyErr { type: <class 'KeyboardInterrupt'>, "
            "value: KeyboardInterrupt(), traceback: None }")

    monkeypatch.setattr(store, "ingest", interrupted)
    night = log(tmp_path / "n" / "a.parquet", [req("a")])
    r = CliRunner().invoke(main, ["ingest", str(night), "--store", str(tmp_path / "st")])
    assert (r.exit_code, r.output.strip().splitlines()[-1:]) == (130, ["llm-cost: interrupted"])


def test_a_rust_panic_that_is_no_interrupt_is_not_called_one(tmp_path, monkeypatch):
    import polars as pl
    from click.testing import CliRunner

    from analyzer.cli import main

    def panics(*a, **k):
        raise pl.exceptions.PanicException("index out of bounds")

    monkeypatch.setattr(store, "ingest", panics)
    night = log(tmp_path / "n" / "a.parquet", [req("a")])
    # Not called an interrupt, nor a traceback since parquet2: one line naming Polars' own message.
    r = CliRunner().invoke(main, ["ingest", str(night), "--store", str(tmp_path / "st")])
    assert r.exit_code == 2 and "interrupted" not in r.output, r.output
    assert r.output.startswith("llm-cost: error: ") and "Polars failed (index out of bounds" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output


# ----------------------------------------------------------------------------------------------
# The lead's fix of LLM_COST_SEARCH_KEYS_FIRST (`=0` is off) left the store's own switch as it was.


@pytest.mark.parametrize("value,on", [("1", True), ("yes", True), ("0", False), ("false", False), ("", False)])
def test_store_trace_reads_0_and_false_as_off(value, on):
    # LLM_COST_STORE_TRACE=0 turned the ingest's trace on (any non-empty value did): a line per step
    # on stderr of a cron job that had meant to switch it off.
    import os
    import subprocess
    import sys
    out = subprocess.run([sys.executable, "-c", "from analyzer import store; print(bool(store.TRACE))"],
                         env={**os.environ, "LLM_COST_STORE_TRACE": value}, capture_output=True, text=True,
                         check=True).stdout
    assert out.strip() == str(on)
