"""Attack on parquet2 (analyzer/held.py: a stamp per checked Parquet file, compared before each plan
reads it and after; descriptors held per scope; a Polars panic as one line).

Tried, and held:
- a 2M-row input overwritten in place (`cat other > log`, `truncate -s 0` then the other file) at
  0.5-7 s into `report` and `price -o rows.parquet`: the run either read one whole file (the write
  landed before the check or after the last read) or stopped in the line "changed while being read
  (written again: N bytes, M when checked)", exit 2, no rows file; a write landing while Polars read
  made it panic (its message and backtrace on stderr), the error still that one line. No SIGBUS:
  Polars 2.1 reads by pread, not a memory map.
- a page made damaged in place, same size, same last 4 KiB, its mtime set back (the stamp cannot
  see it): `report`, `price -o parquet/csv/jsonl`, `whatif`, `audit`, `ingest` all end in one line
  "cannot read input: Polars failed (...)", exit 2, no output file (test below).
- 100 Parquet files under `ulimit -n 64` (`report`, `price`); the same file named twice, by a hard
  link, a symlink and a glob: read once, the others listed as skipped; Parquet on stdin (`-`, a
  file redirected to /dev/stdin); `price x.parquet -o x.parquet` refused.
- 6 threads each pricing 3 files 5 times (`analyze`, `price_requests` in `with rows:`): every
  thread's rows its own files', no descriptor left, the held count back to 0.

Broken, fixed here:
- rows read after they were closed (`with rows: ...`, then `rows.sink(...)` or `rows.lazy()`):
  the plans read `/proc/self/fd/N`, closed; a file opened since under that number was read and
  priced as the rows (another log's requests written to the output, no error). PricedRows refuses
  now, in one line.
- past the descriptor cap (files read by path), an input replaced by a FIFO after its check: the
  comparison opened the FIFO and waited for a writer for ever; SIGTERM (`timeout`) and Ctrl-C ran
  the comparison again and waited again (killed only by SIGKILL). Opened without blocking now:
  "replaced by another file".
- an input written while PyArrow checked it (the file shorter than its footer says) failed as
  "cannot read (damaged Parquet: File too short ...)": a sound file named damaged. Now "it changed
  while it was checked: run again".
- `ingest`: the digest was taken by path before the file was checked and read: a file replaced in
  between (Parquet or CSV) had its new rows stored under the old content's digest, and the old
  content put back was "unchanged" from then on. The file read must be the one stat'ed before the
  digest (a Parquet file's check stamp; a text log's inode).
- `ingest` past the descriptor limit: "damaged store: ...: Too many open files (os error 24)",
  sending the user to `store repair`; the limit is named now.

Broken, left then (strict xfails), fixed since:
- `price_requests(paths)[0].lazy().collect()`: the rows are dropped as soon as `.lazy()` returns,
  their files closed, and the plan reads whatever holds the descriptor number then. Now every plan
  reading a descriptor refers to it (held.Held.scan): it closes when the last such plan is gone.
- a page rewritten in place with the same size and footer and the mtime set back: the stamp (size,
  mtime, last 4 KiB) is the same, and the run prices the new bytes without a word. The change time
  is in the stamp now (a file renamed over the checked one, one link less, is not a change).
- `ingest` of 40 one-day Parquet files under `ulimit -n 40` fails after ~21: the repeat check opens
  every stored data file of those days at once (parquet1 failed earlier, every input held open).
  One multi-file scan now.
- (found with them) a text log rewritten in place between its digest and its read was stored as the
  new bytes under the old digest: its first digested bytes are hashed again when it moved.
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
from decimal import Decimal as D
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer import price_requests, sources
from analyzer.cli import main
from analyzer.errors import SourceError

ROOT = Path(__file__).resolve().parents[2]
DAMAGED = ROOT / "fixtures" / "damaged-parquet"
MODELS = ["claude-sonnet-4-5", "claude-opus-4-6", "claude-haiku-4-5"]
# 10 requests of each model, 1,000 in / 100 out: 10 x (3,000 + 1,500 + 5,000 + 2,500 + 1,000 + 500) / 1e6
COST = D("0.135")


def _write(path: Path, n: int = 30, tokens: int = 1000, **kw) -> str:
    pq.write_table(pa.table({
        "request_id": [f"req_{path.stem}_{i:06d}" for i in range(n)],
        "timestamp": [f"2026-10-01T00:{i % 60:02d}:00Z" for i in range(n)],
        "model": [MODELS[i % 3] for i in range(n)],
        "input_tokens": pa.array([tokens] * n, pa.int64()),
        "output_tokens": pa.array([100] * n, pa.int64()),
    }), path, compression="NONE", **kw)
    return str(path)


def _files(rows: pl.DataFrame) -> set[str]:
    return {rid.split("_")[1] for rid in rows["request_id"]}


@pytest.mark.parametrize("read", ["sink", "lazy", "sink_parquet"])
def test_rows_read_after_they_were_closed_are_refused_not_read_from_another_file(tmp_path, read):
    """Was: the closed descriptor's number, taken by the next file opened, was read: b's rows written
    as a's, no error."""
    a, b = _write(tmp_path / "a.parquet"), _write(tmp_path / "b.parquet")
    rows, _ = price_requests([a])
    with rows:
        assert _files(rows.lazy().collect()) == {"a"}
    with open(b, "rb"):  # (takes the number a's descriptor had)
        with pytest.raises(SourceError, match="these rows were closed"):
            if read == "lazy":
                rows.lazy().collect()
            else:
                getattr(rows, read)(str(tmp_path / "out.parquet"))
    assert not (tmp_path / "out.parquet").exists()


def test_a_plan_of_rows_dropped_at_once_reads_its_own_file(tmp_path):
    """Was: the rows dropped when .lazy() returned closed their descriptors (the finalizer), and the
    plan read /proc/self/fd/N: b's rows priced as a's. The plan keeps the descriptor open now, and
    it closes when the plan (and every plan made from it) is gone."""
    import gc

    a, b = _write(tmp_path / "a.parquet"), _write(tmp_path / "b.parquet")
    lf = price_requests([a])[0].lazy()
    gc.collect()
    with open(b, "rb"):
        assert _files(lf.collect()) == {"a"}
        derived = lf.select("request_id", "cost")
        del lf
        gc.collect()
        with open(b, "rb"):
            assert _files(derived.collect()) == {"a"}
            assert derived.select(pl.col("cost").sum()).collect().item() == COST
    del derived
    gc.collect()
    assert not any(os.path.realpath(f"/proc/self/fd/{fd}") == a for fd in os.listdir("/proc/self/fd"))


def test_a_plan_made_before_its_rows_were_closed_reads_its_own_file(tmp_path, monkeypatch):
    """A plan made inside `with rows:` and collected after: the rows closed, the plan still holds the
    descriptor (it would read another file opened since under its number); and no warning of
    Polars' (its credential provider parameter is "unstable": POLARS_WARN_UNSTABLE=1 printed it)."""
    import gc
    import warnings

    monkeypatch.setenv("POLARS_WARN_UNSTABLE", "1")
    a, b = _write(tmp_path / "a.parquet"), _write(tmp_path / "b.parquet")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rows, _ = price_requests([a])
        with rows:
            lf = rows.lazy()
        gc.collect()
        with open(b, "rb"):
            assert _files(lf.collect()) == {"a"}
        with pytest.raises(SourceError, match="these rows were closed"):
            rows.lazy()


_FIFO_RUN = """
import os, sys
from analyzer import held, sources
from analyzer.cli import main
held._descriptor_cap = lambda: 0  # (read by path, as past a quarter of the descriptor limit)
checked = sources.check_parquet
def then_fifo(p):
    found = checked(p)
    os.unlink(p)
    os.mkfifo(p)
    return found
sources.check_parquet = then_fifo
main(["report", sys.argv[1]])
"""


def test_an_input_replaced_by_a_fifo_after_its_check_is_one_line_not_a_hang(tmp_path):
    """Was: the comparison of a file read by path opened the FIFO and waited for ever (SIGTERM too)."""
    log = _write(tmp_path / "log.parquet")
    r = subprocess.run([sys.executable, "-c", _FIFO_RUN, log], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stderr == f"llm-cost: error: {log}: changed while being read (replaced by another file); run again\n"


def test_an_input_written_while_it_is_checked_is_not_called_damaged(tmp_path, monkeypatch):
    """Was: "cannot read (damaged Parquet: File too short ...)": the file was sound, and shorter
    only while another program wrote it."""
    log = tmp_path / "log.parquet"
    _write(log, n=3000)
    check = sources._check_parquet

    def truncated_while_read(file, pa, pq):
        with open(log, "r+b") as f:
            f.truncate(log.stat().st_size // 2)
        return check(file, pa, pq)
    monkeypatch.setattr(sources, "_check_parquet", truncated_while_read)
    r = CliRunner().invoke(main, ["report", str(log)])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {log}: cannot read (it changed while it was checked: run again)\n"


def _rewritten_after_check(monkeypatch, target: Path, write) -> None:
    """After `target`'s check, `write` changes it in place; its mtime is set back (touch -d)."""
    from analyzer import invoices

    checked = sources.check_parquet

    def then_rewritten(p):
        found = checked(p)
        if p == str(target):
            st = os.stat(p)
            with open(p, "r+b") as f:
                write(f)
            os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
        return found
    monkeypatch.setattr(sources, "check_parquet", then_rewritten)
    monkeypatch.setattr(invoices, "check_parquet", then_rewritten)


@pytest.mark.parametrize("command", ["report", "price parquet", "price csv", "price jsonl", "whatif", "audit",
                                     "ingest"])
def test_a_page_damaged_unseen_by_the_stamp_is_one_line_on_every_command(tmp_path, monkeypatch, capfd, command):
    """The same size, the same last 4 KiB (one byte 982 of 5,697 differs), the mtime set back, and
    the change time not moved (a file system whose clock ticks by the second, the write in the
    check's second): the stamp is the same, Polars reads the damaged page and panics. One line,
    exit 2, nothing written."""
    from analyzer import held

    real = held.stamp

    def coarse(fd):  # (the change time as it was: see the docstring)
        return (*real(fd)[:5], 0, 0)
    monkeypatch.setattr(held, "stamp", coarse)
    monkeypatch.setattr(sources, "stamp", coarse)
    log = tmp_path / "log.parquet"
    log.write_bytes((DAMAGED / "hourly.parquet").read_bytes())  # (the undamaged file: bytes, not a writer's output)
    damaged = (DAMAGED / "hourly-levels.parquet").read_bytes()
    assert len(damaged) == log.stat().st_size and damaged[-4096:] == log.read_bytes()[-4096:]
    _rewritten_after_check(monkeypatch, log, lambda f: f.write(damaged))
    out = tmp_path / f"rows.{command.split()[-1]}"
    args = {"report": ["report", str(log)], "whatif": ["whatif", str(log), "--batch"],
            "audit": ["audit", str(log), "--invoice", str(ROOT / "fixtures" / "invoices" / "focus_sample.csv")],
            "ingest": ["ingest", str(log), "--store", str(tmp_path / "store")]}.get(
        command, ["price", str(log), "-o", str(out)])
    r = CliRunner().invoke(main, args)
    assert "panicked" in capfd.readouterr().err  # (read unchecked: the stamp did not see the change)
    assert r.exit_code == 2, r.output
    assert r.output.startswith("llm-cost: error: cannot read input: Polars failed (") and r.output.count("\n") == 1
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir() if p.name != "store") == ["log.parquet"]


def test_a_value_rewritten_in_place_with_the_mtime_set_back_is_refused(tmp_path, monkeypatch):
    """Was: the stamp (size, mtime, last 4 KiB) was the same, and the run priced one request of
    1,000,000 tokens without a word. The change time, which no one sets back, is in the stamp now."""
    log = tmp_path / "log.parquet"
    _write(log, n=3000, use_dictionary=False, write_statistics=False)
    start = pq.ParquetFile(log).metadata.row_group(0).column(3).data_page_offset  # (input_tokens: plain int64)
    assert log.stat().st_size - start > 4096 + 64

    def more_tokens(f):
        data = f.read()
        f.seek(data.index(struct.pack("<q", 1000), start + 64))
        f.write(struct.pack("<q", 1_000_000))
    _rewritten_after_check(monkeypatch, log, more_tokens)
    r = CliRunner().invoke(main, ["report", str(log), "--format", "json", "-q"])
    assert r.exit_code == 2, r.output  # (was 0: 3,000 requests of 1,000 tokens but one of 1,000,000)
    assert r.output == (f"llm-cost: error: {log}: changed while being read (its change time moved: written with "
                        "its time set back, renamed, or its mode changed); run again\n")


def test_a_parquet_input_renamed_while_it_is_read_is_refused_not_read_unseen(tmp_path, monkeypatch):
    """The price of the change time in the stamp: a file renamed after its check (its descriptor
    still reads the checked bytes) stops the run too, "run again". Chosen: the change time cannot
    tell a rename from a write with the mtime set back, and the run must never price bytes unseen."""
    log = tmp_path / "log.parquet"
    _write(log)
    checked = sources.check_parquet

    def then_renamed(p):
        found = checked(p)
        os.rename(p, tmp_path / "old.parquet")
        return found
    monkeypatch.setattr(sources, "check_parquet", then_renamed)
    r = CliRunner().invoke(main, ["report", str(log), "-q"])
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"llm-cost: error: {log}: changed while being read (its change time moved"), r.output


def test_a_store_never_records_rows_under_the_digest_of_other_bytes(tmp_path, monkeypatch):
    """Was: the ingest took the file's digest by path, then checked and read the file: replaced in
    between, its new rows were stored under the old content's digest, and the old content put back
    was "unchanged" from then on, the store holding the other rows for good. The file checked must
    be the one stat'ed before the digest: else one line, nothing stored."""
    log, new = tmp_path / "log.parquet", tmp_path / "new.parquet"
    _write(log, tokens=1000)
    _write(new, tokens=5)
    old = log.read_bytes()
    checked = sources.check_parquet

    def replaced_then_checked(p):
        if p == str(log) and log.read_bytes() == old:
            os.replace(new, log)
        return checked(p)
    monkeypatch.setattr(sources, "check_parquet", replaced_then_checked)
    store = str(tmp_path / "store")
    r = CliRunner().invoke(main, ["ingest", str(log), "--store", store])
    assert r.exit_code == 2, r.output
    assert r.output == (f"llm-cost: error: {log}: changed while being read (replaced or written again since its "
                        "digest was taken); run again\n")
    log.write_bytes(old)  # (put back: read again, its own rows stored)
    monkeypatch.undo()
    r = CliRunner().invoke(main, ["ingest", str(log), "--store", store, "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", "--store", store, "--format", "json", "-q"])
    assert r.exit_code == 0, r.output
    assert D(json.loads(r.output)["totals"]["cost"]) == COST


def test_a_store_never_records_a_text_log_under_the_digest_of_another(tmp_path, monkeypatch):
    """The same for a CSV log replaced by rename after its digest, before it is read (was: its
    replacement's rows stored under the first content's digest)."""
    from analyzer import store as store_module

    header = "request_id,timestamp,model,input_tokens,output_tokens\n"
    old = header + "".join(f"r{i},2026-10-01T00:00:{i:02d}Z,claude-sonnet-4-5,1000,100\n" for i in range(10))
    log = tmp_path / "log.csv"
    log.write_text(old)
    read = store_module._read_file

    def replaced_then_read(*args, **kwargs):
        (tmp_path / "new.csv").write_text(old.replace(",1000,", ",5,"))
        os.replace(tmp_path / "new.csv", log)
        return read(*args, **kwargs)
    monkeypatch.setattr(store_module, "_read_file", replaced_then_read)
    store = str(tmp_path / "store")
    r = CliRunner().invoke(main, ["ingest", str(log), "--store", store])
    assert r.exit_code == 2, r.output
    assert r.output == (f"llm-cost: error: {log}: changed while being read (replaced since its digest was "
                        "taken); run again\n")
    monkeypatch.undo()
    log.write_text(old)
    r = CliRunner().invoke(main, ["ingest", str(log), "--store", store, "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", "--store", store, "--format", "json", "-q"])
    # 10 x (1,000 x $3 + 100 x $15) / 1e6 (claude-sonnet-4-5)
    assert D(json.loads(r.output)["totals"]["cost"]) == D("0.045")


@pytest.mark.parametrize("how", ["rewritten", "appended", "touched"])
def test_a_store_never_records_a_text_log_rewritten_in_place_under_its_old_digest(tmp_path, monkeypatch, how):
    """Was: only the inode was compared for a text log: one rewritten in place (the same size, its
    mtime set back) between its digest and its read was stored as the new bytes under the old
    digest, and the old content put back was "unchanged" from then on. Now what was read is compared
    with what was digested: a write since stops the ingest in one line; records appended after the
    digested bytes, or the times alone touched, do not."""
    from analyzer import store as store_module

    header = "request_id,timestamp,model,input_tokens,output_tokens\n"
    old = header + "".join(f"r{i},2026-10-01T00:00:{i:02d}Z,claude-sonnet-4-5,1000,100\n" for i in range(10))
    log = tmp_path / "log.csv"
    log.write_text(old)
    read = store_module._read_file

    def changed_then_read(*args, **kwargs):
        st = log.stat()
        if how == "rewritten":
            with open(log, "r+") as f:
                f.write(old.replace(",1000,", ",5000,"))
            os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))
        elif how == "appended":
            with open(log, "a") as f:
                f.write("r10,2026-10-01T00:01:00Z,claude-sonnet-4-5,1000,100\n")
        else:
            os.utime(log, ns=(st.st_atime_ns + 10**9, st.st_mtime_ns + 10**9))
        return read(*args, **kwargs)
    monkeypatch.setattr(store_module, "_read_file", changed_then_read)
    store = str(tmp_path / "store")
    r = CliRunner().invoke(main, ["ingest", str(log), "--store", store])
    if how == "rewritten":
        assert r.exit_code == 2, r.output
        assert r.output == (f"llm-cost: error: {log}: changed while being read (written again since its digest "
                            "was taken); run again\n")
        monkeypatch.undo()
        log.write_text(old)  # (put back: read again, its own rows stored)
        r = CliRunner().invoke(main, ["ingest", str(log), "--store", store, "-q"])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["report", "--store", store, "--format", "json", "-q"])
    # 10 x (1,000 x $3 + 100 x $15) / 1e6 (claude-sonnet-4-5); appended: the 11th read too (at most
    # the size the run first saw), stored under the digest of the first 10: the next ingest reads the
    # file again, its digest another
    assert D(json.loads(r.output)["totals"]["cost"]) in ({D("0.045"), D("0.0495")} if how == "appended"
                                                         else {D("0.045")})


@pytest.fixture(scope="module")
def ingest_past_the_descriptor_limit(tmp_path_factory):
    """40 Parquet logs of one day ingested under `ulimit -n 40` (as a user's shell would set it)."""
    import resource

    folder = tmp_path_factory.mktemp("limit")
    for i in range(40):
        _write(folder / f"f{i:02d}.parquet")

    def limit():
        resource.setrlimit(resource.RLIMIT_NOFILE, (40, 40))
    return subprocess.run([sys.executable, "-m", "analyzer", "ingest", str(folder / "f*.parquet"), "--store",
                           str(folder / "store"), "-q"], cwd=ROOT, capture_output=True, text=True, timeout=300,
                          preexec_fn=limit)


def test_an_ingest_past_the_descriptor_limit_does_not_call_the_store_damaged(ingest_past_the_descriptor_limit):
    """Was: "damaged store: ...: Too many open files (os error 24)": a sound store, the user sent to
    `store repair`. The process's limit is named instead."""
    r = ingest_past_the_descriptor_limit
    assert "damaged store" not in r.stderr and "Traceback" not in r.stderr
    if r.returncode:
        assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
        assert "(os error 24)" in r.stderr and "raise the limit on open files (`ulimit -n`)" in r.stderr, r.stderr


def test_an_ingest_of_many_files_fits_the_descriptor_limit(ingest_past_the_descriptor_limit):
    """Was: EMFILE after ~21 of 40 one-day files: the repeat check's concat of a scan per stored data
    file of the night's days opened them all at once. One multi-file scan now, a few open at a time."""
    assert ingest_past_the_descriptor_limit.returncode == 0, ingest_past_the_descriptor_limit.stderr
