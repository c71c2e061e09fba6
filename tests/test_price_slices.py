"""`llm-cost price` writes each file's rows slice by slice (writers.write_rows): the output must be
the one a single streaming pass writes, whatever the slice length, and every row accounted for once."""

from __future__ import annotations

import errno
import gzip
import json
import os
import shutil
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import Options, price_requests, sources, store, writers
from analyzer.errors import OutputError

from .conftest import SAMPLE, canonical_frame, write_frame

SONNET = "claude-sonnet-4-5"  # $3 input, $15 output per MTok


def _req(rid, ts, inp=1000, out=100, **kw):
    return {"request_id": rid, "timestamp": ts, "model": SONNET, "input_tokens": inp, "output_tokens": out, **kw}


def _logs(root, robust: bool = False):
    """A directory of logs: Parquet, CSV in every timestamp form with quoted cells, gzip JSONL, JSONL
    with a broken line and a blank one, the sample logs; requests logged in two files (the copy with
    more output wins), quarantined records. `robust`: a CSV count that is not an integer, which
    makes the run read every file as text (Python readers that cannot be sliced)."""
    root.mkdir()
    shutil.copy(SAMPLE / "october.csv", root / "october.csv")
    shutil.copy(SAMPLE / "november.jsonl", root / "november.jsonl")
    rows = [_req(f"p{i:02d}", f"2026-10-{1 + i % 28:02d}T{i % 24:02d}:00:00Z", inp=100 * i, out=7 * i + 1,
                 workspace=["a", "b,c", 'say "hi"'][i % 3]) for i in range(40)]
    rows.append(_req("q1", "2026-10-05T10:00:00Z", inp=-5))  # negative: quarantined
    rows.append(_req("x1", "2026-10-05T11:00:00Z", out=10))  # partial: the copy in the CSV wins
    write_frame(canonical_frame(rows), root / "a.parquet")
    forms = ["2026-10-03T10:00:00Z", "2026-10-03T10:00:00+00:00", "2026-10-03T12:00:00+0200", "2026-10-03T10:00:00",
             "1791000000000", "2026-10-03T10:00:00.123456789Z", "2026-10-03 10:00:00+00:00"]
    lines = ["request_id,timestamp,model,workspace,input_tokens,output_tokens"]
    for i in range(30):
        ws = ['"x,y"', '"line\nbreak"', '"=1+2"', "plain", '"q""uote"'][i % 5]
        lines.append(f"c{i:02d},{forms[i % len(forms)]},{SONNET},{ws},{10 * i},{i + 1}")
    lines.append(f"x1,2026-10-05T11:00:00Z,{SONNET},plain,1000,500")  # the winning copy of x1
    lines.append(f"p03,2026-10-04T03:00:00Z,{SONNET},a,300,22")  # an exact copy of a.parquet's: the first stays
    lines.append(f"bad,not a time,{SONNET},plain,1,1")  # quarantined
    if robust:
        lines.append(f"int,2026-10-06T00:00:00Z,{SONNET},plain,12x,1")
    (root / "b.csv").write_text("\n".join(lines) + "\n")
    recs = [json.dumps(_req(f"g{i:02d}", f"2026-11-{1 + i % 20:02d}T08:00:00Z", inp=i + 1, out=2 * i + 1))
            for i in range(25)]
    recs.append(json.dumps(_req("c05", "2026-10-03T10:00:00Z", inp=50, out=6)))  # exact copy of a CSV request
    with gzip.open(root / "c.jsonl.gz", "wt") as f:
        f.write("\n".join(recs) + "\n")
    d = [json.dumps(_req(f"j{i:02d}", f"2026-11-{1 + i % 20:02d}T09:00:00+01:00", inp=3 * i, out=i + 1))
         for i in range(20)]
    d[4] = '{"request_id": "j04", "timestamp": '  # broken line: quarantined
    d.insert(7, "")
    (root / "d.jsonl").write_text("\n".join(d) + "\n")
    return root


def _write(rows, fmt: str, out) -> bytes | pl.DataFrame:
    writers.sink_rows(rows, fmt, str(out))
    return pl.read_parquet(out) if fmt == "parquet" else out.read_bytes()


def _one_pass(monkeypatch, paths, opts, fmt, out):
    with monkeypatch.context() as m:
        m.setattr(writers, "_sliceable", lambda source: None)
        m.setattr(writers, "_one_reader", lambda source: False)
        rows, acc = price_requests(paths, opts)
        return _write(rows, fmt, out), acc


def _counting(monkeypatch) -> list[int]:
    heights = []
    append = writers._Appender.append

    def counted(self, frame):
        heights.append(frame.height)
        append(self, frame)

    monkeypatch.setattr(writers._Appender, "append", counted)
    return heights


@pytest.mark.parametrize("robust", [False, True])
@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl"])
def test_slices_of_7_rows_write_what_one_pass_writes(tmp_path, monkeypatch, fmt, robust):
    logs = _logs(tmp_path / "logs", robust)
    opts = Options(quarantine=str(tmp_path / "q.jsonl"))
    whole, acc1 = _one_pass(monkeypatch, [str(logs)], opts, fmt, tmp_path / f"one.{fmt}")
    monkeypatch.setattr(writers, "SLICE_ROWS", 7)
    monkeypatch.setattr(sources, "PIECE_BYTES", 150)  # (this tool's CSV reader: a few records a piece)
    heights = _counting(monkeypatch)
    rows, acc = price_requests([str(logs)], opts)
    sliced = _write(rows, fmt, tmp_path / f"sliced.{fmt}")
    # Sliced indeed: the Parquet file and the spooled JSON by slices, the CSV by pieces of its reader.
    assert len(heights) > len(rows.sources) + 12
    if fmt == "parquet":
        assert sliced.schema == whole.schema
        assert sliced.equals(whole)
        out = sliced
    else:
        assert sliced == whole  # byte for byte
        out = pl.read_csv(sliced, infer_schema=False) if fmt == "csv" else pl.read_ndjson(sliced, infer_schema_length=None)
    assert acc.as_dict() == acc1.as_dict() and acc.balanced
    assert out.height == acc.priced + acc.unpriced  # every priced or unpriced request once, no other row
    assert out["request_id"].n_unique() == out.height
    # (the sample logs hold 1 duplicate and 4 quarantined records)
    assert (acc.duplicates, acc.quarantined) == (1 + 3, 4 + 3 + robust)
    # x1: the CSV's copy (500 output tokens) won: $0.003 + $0.0075
    x1 = out.filter(pl.col("request_id") == "x1")
    assert (x1["source_file"].str.ends_with("b.csv").item(), Decimal(str(x1["cost"].item()))) == (True, Decimal("0.0105"))
    # rows of every file keep their own line numbers (slices start anywhere in a file)
    p39 = out.filter(pl.col("request_id") == "p39")
    assert int(p39["source_row"].item()) == 40
    j19 = out.filter(pl.col("request_id") == "j19")
    assert int(j19["source_row"].item()) == 21  # (line 21: a blank line is line 8)


@settings(max_examples=8, deadline=None)
@given(n=st.integers(1, 60))
def test_any_slice_length_gives_the_same_parquet(tmp_path_factory, n):
    tmp = tmp_path_factory.mktemp("slices")
    rows = [_req(f"r{i}", f"2026-10-{1 + i % 28:02d}T10:00:00Z", inp=i, out=i % 5) for i in range(53)]
    rows += [_req("r7", "2026-10-08T10:00:00Z", inp=7, out=9)]  # the later copy has more output: it wins
    src = write_frame(canonical_frame(rows), tmp / "log.parquet")
    opts = Options(quarantine=str(tmp / "q.jsonl"))
    rows_, _ = price_requests([str(src)], opts)
    whole = rows_.lazy().collect()
    old = writers.SLICE_ROWS
    writers.SLICE_ROWS = n
    try:
        rows_, acc = price_requests([str(src)], opts)
        got = _write(rows_, "parquet", tmp / "out.parquet")
    finally:
        writers.SLICE_ROWS = old
    assert got.equals(whole) and got.height == 53 and acc.duplicates == 1


def test_slice_length_follows_the_width_of_the_rows(tmp_path, monkeypatch, quarantine):
    """Wide rows (a dimension of 20 KB a request) make short slices: the slice after the first holds
    about SLICE_BYTES of rows, never a fixed count that wide logs would overflow."""
    monkeypatch.setattr(writers, "SLICE_BYTES", 4 << 20)
    monkeypatch.setattr(writers, "FIRST_SLICE_ROWS", 100)
    heights = _counting(monkeypatch)
    rows = [_req(f"w{i}", "2026-10-01T10:00:00Z", note="n" * 20_000 + str(i)) for i in range(2_000)]
    src = write_frame(canonical_frame(rows).with_columns(pl.Series("note", [r["note"] for r in rows])),
                      tmp_path / "wide.parquet")
    priced, acc = price_requests([str(src)], Options(quarantine=quarantine))
    out = _write(priced, "parquet", tmp_path / "out.parquet")
    assert out.height == 2_000 and out["note"].str.len_bytes().min() == 20_001
    assert heights[0] == 100
    assert writers.MIN_SLICE_ROWS == 1_000 and set(heights[1:-1]) == {1_000}  # 4 MiB / ~20 KB: the floor
    monkeypatch.setattr(writers, "MIN_SLICE_ROWS", 10)
    heights.clear()
    _write(priced, "parquet", tmp_path / "out2.parquet")
    assert 150 <= heights[1] <= 210  # ~4 MiB of 20 KB rows


def test_a_failure_mid_write_leaves_the_previous_output_and_no_temporary_file(tmp_path, monkeypatch, quarantine):
    src = write_frame(canonical_frame([_req(f"r{i}", "2026-10-01T10:00:00Z") for i in range(30)]), tmp_path / "l.parquet")
    out = tmp_path / "out" / "rows.csv"
    out.parent.mkdir()
    out.write_text("previous\n")
    monkeypatch.setattr(writers, "SLICE_ROWS", 4)
    append, calls = writers._Appender.append, []

    def failing(self, frame):
        calls.append(1)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        append(self, frame)

    monkeypatch.setattr(writers._Appender, "append", failing)
    rows, _ = price_requests([str(src)], Options(quarantine=quarantine))
    with pytest.raises(Exception, match="No space left"):
        writers.sink_rows(rows, "csv", str(out))
    assert out.read_text() == "previous\n" and os.listdir(out.parent) == ["rows.csv"]


def _recording_writes(monkeypatch, fail_after: int | None = None,
                      failure: BaseException | None = None) -> dict[int, list[int]]:
    """Bytes of every os.write, by file descriptor; `fail_after`: `failure` (a full disk) after that many."""
    real, sizes = os.write, {}

    def write(fd, data):
        if fail_after is not None and sum(sum(v) for v in sizes.values()) + len(data) > fail_after:
            raise failure or OSError(errno.ENOSPC, "No space left on device")
        n = real(fd, data)
        sizes.setdefault(fd, []).append(n)
        return n

    monkeypatch.setattr(os, "write", write)
    return sizes


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_text_rows_reach_the_file_in_small_writes(tmp_path, monkeypatch, quarantine, fmt):
    """The kernel sizes a buffered write's page-cache folios by its length, and on a VM that hands
    free memory back to the host, megabyte writes cost 2-3x the system time (writers._Pieces):
    every byte of CSV and JSON Lines goes to the file in writes of at most WRITE_PIECE bytes."""
    rows = [_req(f"r{i:03d}", f"2026-10-{1 + i % 28:02d}T10:00:00Z", inp=i + 1, workspace="w" * (i % 50))
            for i in range(200)]
    src = write_frame(canonical_frame(rows), tmp_path / "l.parquet")
    whole = tmp_path / f"whole.{fmt}"
    priced, _ = price_requests([str(src)], Options(quarantine=quarantine))
    writers.sink_rows(priced, fmt, str(whole))
    monkeypatch.setattr(writers, "WRITE_PIECE", 1000, raising=False)
    monkeypatch.setattr(writers, "SLICE_ROWS", 64)
    sizes = _recording_writes(monkeypatch)
    out = tmp_path / f"out.{fmt}"
    priced, _ = price_requests([str(src)], Options(quarantine=quarantine))
    writers.sink_rows(priced, fmt, str(out))
    monkeypatch.undo()
    written = max(sizes.values(), key=sum, default=[])
    assert sum(written) == out.stat().st_size > 50_000 and max(written) <= 1000
    assert out.read_bytes() == whole.read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_full_disk_is_one_line_naming_the_output(tmp_path, monkeypatch, quarantine, fmt):
    src = write_frame(canonical_frame([_req(f"r{i}", "2026-10-01T10:00:00Z") for i in range(300)]), tmp_path / "l.parquet")
    out = tmp_path / "out" / f"rows.{fmt}"
    out.parent.mkdir()
    out.write_text("previous\n")
    monkeypatch.setattr(writers, "SLICE_ROWS", 50)
    priced, _ = price_requests([str(src)], Options(quarantine=quarantine))
    _recording_writes(monkeypatch, fail_after=20_000)
    with pytest.raises(OutputError) as e:
        writers.sink_rows(priced, fmt, str(out))
    monkeypatch.undo()
    assert str(e.value) == f"cannot write {out}: No space left on device"
    assert out.read_text() == "previous\n" and os.listdir(out.parent) == [f"rows.{fmt}"]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_ctrl_c_while_writing_text_rows_is_an_interrupt(tmp_path, monkeypatch, quarantine, fmt):
    """Polars turns whatever a Python write raises into an OSError: Ctrl-C must stay KeyboardInterrupt
    (exit 130, "interrupted"), not become "cannot write F: OSError"."""
    src = write_frame(canonical_frame([_req(f"r{i}", "2026-10-01T10:00:00Z") for i in range(300)]), tmp_path / "l.parquet")
    out = tmp_path / "out" / f"rows.{fmt}"
    out.parent.mkdir()
    monkeypatch.setattr(writers, "SLICE_ROWS", 50)
    priced, _ = price_requests([str(src)], Options(quarantine=quarantine))
    _recording_writes(monkeypatch, fail_after=20_000, failure=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        writers.sink_rows(priced, fmt, str(out))
    monkeypatch.undo()
    assert os.listdir(out.parent) == []


def _slice_log(tmp_path, kind: str) -> str:
    """30 requests as a Parquet log (sliced where it is read) or plain CSV (this tool's reader,
    resumed piece by piece: sources.resumed)."""
    rows = [_req(f"r{i:02d}", f"2026-10-{1 + i % 28:02d}T10:00:00Z", inp=i + 1) for i in range(30)]
    if kind == "parquet":
        return str(write_frame(canonical_frame(rows), tmp_path / "l.parquet"))
    lines = ["request_id,timestamp,model,input_tokens,output_tokens"]
    lines += [f"{r['request_id']},{r['timestamp']},{SONNET},{r['input_tokens']},{r['output_tokens']}" for r in rows]
    (tmp_path / "l.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "l.csv")


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_the_next_slice_is_collected_while_one_is_appended(tmp_path, monkeypatch, quarantine, kind):
    """While the writer appends slice k, slice k+1 is being collected in the other thread (the two
    halves overlap on two cores), and no slice beyond it (two slices in memory at most)."""
    import threading

    monkeypatch.setattr(writers, "SLICE_ROWS", 4)
    monkeypatch.setattr(sources, "PIECE_BYTES", 150)
    began: list[threading.Event] = []  # slice k's collect has begun
    appending = [threading.Event() for _ in range(40)]  # slice k's append has begun
    start, append = writers._Ahead.start, writers._Appender.append

    def started(self, collect):
        k = len(began)
        began.append(threading.Event())

        def run():
            began[k].set()
            # (slice k waits for slice k - 1's append: collected before it, this would never end)
            assert k == 0 or appending[k - 1].wait(60), "a slice was collected before the one before was appended"
            return collect()
        start(self, run)

    appended: list[int] = []

    def waiting(self, frame):
        k = len(appended)
        appending[k].set()
        assert len(began) <= k + 2  # slice k here, k + 1 at most being collected
        if len(began) == k + 2:  # (no slice k + 1 after the last one)
            assert began[k + 1].wait(60), "the next slice's collect did not start during this append"
        appended.append(frame.height)
        append(self, frame)

    monkeypatch.setattr(writers._Ahead, "start", started)
    monkeypatch.setattr(writers._Appender, "append", waiting)
    rows, acc = price_requests([_slice_log(tmp_path, kind)], Options(quarantine=quarantine))
    assert (writers._sliceable(rows.sources[0]) is None) == (kind == "csv") == writers._one_reader(rows.sources[0])
    out = _write(rows, "csv", tmp_path / "out.csv")
    assert len(appended) >= 5 and sum(appended) == 30 == acc.priced
    assert pl.read_csv(out)["input_tokens"].sum() == sum(range(1, 31))
    assert not [t for t in threading.enumerate() if t.name.startswith("llm-cost-slice")]


@pytest.mark.parametrize("kind", ["parquet", "csv"])
def test_a_failure_collecting_a_slice_is_the_run_s_error(tmp_path, monkeypatch, quarantine, kind):
    """A slice's collect fails in the other thread: the writer raises that error, the output named is
    left as it was, and no temporary file or thread is left behind."""
    import threading

    monkeypatch.setattr(writers, "SLICE_ROWS", 4)
    monkeypatch.setattr(sources, "PIECE_BYTES", 150)
    start, calls = writers._Ahead.start, []

    def started(self, collect):
        calls.append(1)
        n = len(calls)

        def run():
            if n == 3:
                raise OSError(5, "Input/output error")
            return collect()
        start(self, run)

    monkeypatch.setattr(writers._Ahead, "start", started)
    out = tmp_path / "out" / "rows.parquet"
    out.parent.mkdir()
    out.write_text("previous\n")
    rows, _ = price_requests([_slice_log(tmp_path, kind)], Options(quarantine=quarantine))
    with pytest.raises(Exception, match="Input/output error"):
        writers.sink_rows(rows, "parquet", str(out))
    assert out.read_text() == "previous\n" and os.listdir(out.parent) == ["rows.parquet"]
    assert len(calls) == 3  # (no slice collected after the failure)
    assert not [t for t in threading.enumerate() if t.name.startswith("llm-cost-slice")]


def test_no_rows_write_the_columns_alone(tmp_path, quarantine):
    src = write_frame(canonical_frame([_req("r1", "2026-10-01T10:00:00Z", inp=-1)]), tmp_path / "l.parquet")
    rows, acc = price_requests([str(src)], Options(quarantine=quarantine))
    assert acc.quarantined == 1
    for fmt in ("parquet", "csv", "jsonl"):
        got = _write(rows, fmt, tmp_path / f"out.{fmt}")
        if fmt == "parquet":
            assert got.height == 0 and got.schema == rows.lazy().collect_schema()
        elif fmt == "csv":
            assert got.decode().splitlines()[0].startswith("request_id,timestamp,")
        else:
            assert got == b""


def test_ingest_in_slices_stores_what_one_pass_stores(tmp_path, monkeypatch):
    """The store's nightly pricing writes its month files in slices too (store._MonthFiles)."""
    logs = _logs(tmp_path / "logs")
    with monkeypatch.context() as m:
        m.setattr(writers, "_sliceable", lambda source: None)
        m.setattr(writers, "_one_reader", lambda source: False)
        store.ingest([str(logs)], str(tmp_path / "one"))
    monkeypatch.setattr(writers, "SLICE_ROWS", 3)
    heights = _counting(monkeypatch)
    store.ingest([str(logs)], str(tmp_path / "sliced"))
    assert len(heights) > 20
    for by in (["month", "model"], ["day", "workspace"]):
        one, sliced = store.report(str(tmp_path / "one"), by), store.report(str(tmp_path / "sliced"), by)
        assert sliced.rows.equals(one.rows) and sliced.totals == one.totals
        a, b = sliced.accounting.as_dict(), one.accounting.as_dict()
        assert {**a, "quarantine_file": None} == {**b, "quarantine_file": None} and a["balanced"]
    assert (one.accounting.rows_read, one.accounting.priced) == (146, 134)


def test_files_with_other_columns_and_types_unify_as_one_pass(tmp_path, monkeypatch, quarantine):
    """A dimension one file lacks, or holds as a number where another holds text: each slice takes
    the columns and types one concatenated plan gives (null where a file lacks it; a common type)."""
    logs = tmp_path / "logs"
    logs.mkdir()
    a = canonical_frame([_req(f"a{i}", "2026-10-01T10:00:00Z") for i in range(9)])
    write_frame(a.with_columns(pl.Series("team", list(range(9)))), logs / "a.parquet")
    (logs / "b.csv").write_text("request_id,timestamp,model,input_tokens,output_tokens,team,region\n"
                                f"b1,2026-10-02T10:00:00Z,{SONNET},10,1,blue,eu\n")
    write_frame(canonical_frame([_req("c1", "2026-10-03T10:00:00Z")]), logs / "c.parquet")
    whole, _ = _one_pass(monkeypatch, [str(logs)], Options(quarantine=quarantine), "parquet", tmp_path / "one.parquet")
    monkeypatch.setattr(writers, "SLICE_ROWS", 2)
    rows, _ = price_requests([str(logs)], Options(quarantine=quarantine))
    got = _write(rows, "parquet", tmp_path / "sliced.parquet")
    assert got.equals(whole) and got.schema["team"] == pl.String and got.height == 11
    assert got.filter(pl.col("request_id") == "c1")["region"].to_list() == [None]


@pytest.mark.parametrize("renamed", [False, True])
def test_a_slice_of_a_parquet_log_is_read_by_its_scan(tmp_path, renamed):
    """A slice of a canonical Parquet file's rows reaches the scan: with a node between the scan and
    its row numbers (a rename did that), each slice decoded ~10 row groups past its own, 0.07 CPU s
    a slice however short. The rows and their line numbers stay those of one pass."""
    rows = [_req(f"r{i}", f"2026-10-{1 + i % 28:02d}T10:00:00Z", inp=i, out=1) for i in range(30)]
    frame = canonical_frame(rows)
    if renamed:  # (a column whose name the reader cleans: a rename of its own)
        frame = frame.rename({"input_tokens": " Input_Tokens"})
    write_frame(frame, tmp_path / "a.parquet")
    priced, _ = price_requests([str(tmp_path / "a.parquet")], Options())
    for plan in (priced.sources[0].slice(7, 3), priced.plan(0, (7, 3))):
        text = plan.explain()
        assert "SLICE: Positive { offset: 7, len: 3 }" in text and "SLICE[" not in text
    assert writers._sliceable(priced.sources[0]) == 30
    got = priced.plan(0, (7, 3)).collect()
    assert got["request_id"].to_list() == ["r7", "r8", "r9"]
    assert got["source_row"].to_list() == [8, 9, 10] and got["input_tokens"].to_list() == [7, 8, 9]


def test_the_pricing_expressions_are_built_once_not_per_slice(tmp_path, monkeypatch):
    """Building the per-row pricing (the rate frame's rates made integers in Python, its columns made
    literals) cost ~0.25 CPU s; it was built again for every slice of every file."""
    from analyzer import pipeline

    built = []
    costs = pipeline.integer_cost_steps
    monkeypatch.setattr(pipeline, "integer_cost_steps", lambda *a: built.append(1) or costs(*a))
    logs = _logs(tmp_path / "logs")
    monkeypatch.setattr(writers, "SLICE_ROWS", 7)
    heights = _counting(monkeypatch)
    rows, _ = price_requests([str(logs)], Options(quarantine=str(tmp_path / "q.jsonl")))
    _write(rows, "csv", tmp_path / "out.csv")
    assert len(heights) > 12 and len(built) == 1


_LARGEST = Decimal("1E+15")  # (a quadrillion dollars: near 38 digits, Decimal arithmetic rounds at 28)
_money = st.one_of(st.none(), st.decimals(min_value=-_LARGEST, max_value=_LARGEST, places=12, allow_nan=False,
                                          allow_infinity=False))


@settings(max_examples=100, deadline=None)
@given(values=st.lists(_money, min_size=1, max_size=20))
def test_money_is_written_as_its_exact_text(tmp_path_factory, values):
    """price writes money columns as Decimal into CSV and JSON Lines (no cast to text first): the
    writers (and sinks, for a plan written whole) must give the bytes the cast to String gives."""
    from analyzer.schema import MONEY

    tmp = tmp_path_factory.mktemp("money")
    frame = pl.DataFrame({"cost": pl.Series(values, dtype=MONEY)})
    text = frame.with_columns(pl.col("cost").cast(pl.String))
    assert frame.write_csv() == text.write_csv()
    assert frame.write_ndjson() == text.write_ndjson()
    for sink, ext in ((pl.LazyFrame.sink_csv, "csv"), (pl.LazyFrame.sink_ndjson, "jsonl")):
        sink(frame.lazy(), tmp / f"a.{ext}")
        sink(text.lazy(), tmp / f"b.{ext}")
        assert (tmp / f"a.{ext}").read_bytes() == (tmp / f"b.{ext}").read_bytes()
    # and the text is the exact value (a 12-place decimal, never an exponent)
    assert text["cost"].to_list() == [None if v is None else format(v.copy_abs() if v.is_zero() else v, "f")
                                      for v in values]


@pytest.mark.parametrize(("dtype", "values"), [
    (pl.Decimal(10, 2), [Decimal("12.50"), Decimal("-0.01"), None, Decimal("0")]),
    (pl.Decimal(38, 0), [Decimal(123), Decimal(-5), Decimal(10**37)]),
    (pl.Decimal(20, 18), [Decimal("1E-18"), Decimal("-1.5")])])
def test_a_log_decimal_dimension_is_written_as_its_text(dtype, values):
    """A log's own Decimal column (a dimension of any scale) is written uncast too: the same text."""
    frame = pl.DataFrame({"d": pl.Series(values, dtype=dtype)})
    text = frame.with_columns(pl.col("d").cast(pl.String))
    assert frame.write_csv() == text.write_csv() and frame.write_ndjson() == text.write_ndjson()
