"""Reading: every container, compression, directories, globs, and awkward files."""

from __future__ import annotations

import gzip
import json
import os
from decimal import Decimal

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import Options, analyze
from analyzer.errors import DialectError, SourceError
from analyzer.sources import LINE, bounded_csv, bounded_lines, expand_paths, file_set_lines, find_files, open_source

from .conftest import canonical_frame, write_frame

ROWS = [
    {"request_id": "a", "timestamp": "2026-10-10T10:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 1000,
     "output_tokens": 100},
    {"request_id": "b", "timestamp": "2026-10-11T10:00:00Z", "model": "claude-haiku-4-5", "input_tokens": 2000,
     "output_tokens": 200},
]
TOTAL = Decimal("0.0075")  # 1000*3 + 100*15 + 2000*1 + 200*5, per million


def _total(paths, tmp_path, **kw) -> Decimal:
    rep = analyze([str(p) for p in paths], ["model"], Options(quarantine=str(tmp_path / "q.jsonl"), **kw))
    return rep.totals["cost"]


@pytest.fixture
def frame():
    return canonical_frame(ROWS)


@pytest.mark.parametrize("name", ["log.csv", "log.jsonl", "log.parquet"])
def test_plain_containers(frame, tmp_path, name):
    assert _total([write_frame(frame, tmp_path / name)], tmp_path) == TOTAL


@pytest.mark.parametrize("name", ["log.csv", "log.jsonl"])
def test_gzip_and_zstd(frame, tmp_path, name):
    plain = write_frame(frame, tmp_path / name)
    gz = tmp_path / (name + ".gz")
    gz.write_bytes(gzip.compress(plain.read_bytes()))
    import zstandard  # test-only: to make the file; Polars reads zstd itself
    zst = tmp_path / (name + ".zst")
    zst.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    os.unlink(plain)
    assert _total([gz], tmp_path) == TOTAL
    assert _total([zst], tmp_path) == TOTAL


def test_json_array_and_ndjson_extension(frame, tmp_path):
    arr = tmp_path / "log.json"
    arr.write_text(json.dumps(frame.to_dicts()))
    nd = write_frame(frame, tmp_path / "x.jsonl")
    os.rename(nd, tmp_path / "log.ndjson")
    assert _total([arr], tmp_path) == TOTAL
    assert _total([tmp_path / "log.ndjson"], tmp_path) == TOTAL


def test_directory_is_walked_and_glob_expanded(frame, tmp_path):
    sub = tmp_path / "logs" / "2026" / "10"
    sub.mkdir(parents=True)
    write_frame(frame.head(1), sub / "a.csv")
    write_frame(frame.tail(1), tmp_path / "logs" / "b.jsonl")
    (tmp_path / "logs" / "README.txt").write_text("not a log")
    assert _total([tmp_path / "logs"], tmp_path) == TOTAL
    assert _total([str(tmp_path / "logs" / "**" / "*.csv")], tmp_path) == Decimal("0.0045")  # a.csv only
    assert len(expand_paths([str(tmp_path / "logs"), str(sub / "a.csv")])) == 2  # each file once


def test_a_walk_reads_regular_files_in_order_and_follows_no_link_to_a_directory(tmp_path):
    logs = tmp_path / "logs"
    for d in ("b", "a/z", "a", ".hidden"):
        (logs / d).mkdir(parents=True, exist_ok=True)
    for f in ("b/2.jsonl", "a/z/1.csv", "a/3.jsonl", "0.jsonl", ".hidden/x.jsonl", "a/.x.jsonl", "a/notes.txt",
              "llm-cost-quarantine.jsonl"):
        (logs / f).write_text("{}\n")
    os.mkfifo(logs / "a" / "pipe.jsonl")  # reading it would wait for a writer
    (logs / "elsewhere").symlink_to(tmp_path / "logs" / "a", target_is_directory=True)
    (logs / "b" / "link.jsonl").symlink_to(logs / "0.jsonl")
    found = find_files([str(logs)])
    assert [os.path.relpath(p, logs) for p in found.files] == ["0.jsonl", "a/3.jsonl", "a/z/1.csv", "b/2.jsonl"]
    # A link to a file already read is that file (read once); every file passed over is named, with why.
    assert {os.path.relpath(p, logs): why.split(" (")[0] for p, why in found.skipped.items()} == {
        "a/notes.txt": "not a log file name", "a/pipe.jsonl": "not a regular file",
        "b/link.jsonl": f"same file as {logs / '0.jsonl'}", "elsewhere": "link to a directory",
        "llm-cost-quarantine.jsonl": "llm-cost's own quarantine file"}


def test_extensionless_file_is_sniffed(frame, tmp_path):
    p = write_frame(frame, tmp_path / "log.jsonl")
    os.rename(p, tmp_path / "export")
    assert open_source(str(tmp_path / "export")).container == "jsonl"
    assert _total([tmp_path / "export"], tmp_path) == TOTAL


def test_csv_with_bom_and_crlf(frame, tmp_path):
    text = frame.write_csv().replace("\n", "\r\n")
    p = tmp_path / "bom.csv"
    p.write_bytes(b"\xef\xbb\xbf" + text.encode())
    assert _total([p], tmp_path) == TOTAL


def test_mixed_containers_in_one_run(frame, tmp_path):
    a = write_frame(frame.head(1), tmp_path / "a.parquet")
    b = write_frame(frame.tail(1), tmp_path / "b.csv")
    assert _total([a, b], tmp_path) == TOTAL


def test_dimension_columns_pass_through(frame, tmp_path):
    p = write_frame(frame.with_columns(pl.Series("team", ["red", "blue"])), tmp_path / "log.csv")
    rep = analyze([str(p)], ["team"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert dict(zip(rep.rows["team"], rep.rows["cost"])) == {"blue": Decimal("0.003"), "red": Decimal("0.0045")}


def test_missing_path_and_empty_dir(tmp_path):
    with pytest.raises(SourceError, match="no such file"):
        expand_paths([str(tmp_path / "nope.csv")])
    (tmp_path / "empty").mkdir()
    with pytest.raises(SourceError, match="holds no"):
        expand_paths([str(tmp_path / "empty")])
    with pytest.raises(SourceError, match="no file matches"):
        expand_paths([str(tmp_path / "*.csv")])


def test_empty_files_are_skipped_and_named(tmp_path, frame):
    """A night without traffic exports an empty file: the run goes on and the report says so."""
    (tmp_path / "empty.jsonl").write_text("")
    write_frame(frame, tmp_path / "a.csv")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.totals["cost"] == TOTAL
    assert any("empty files skipped" in n and "empty.jsonl" in n for n in rep.notes)
    # Only empty files: an empty report, not a lost run (see tests/hostile/test_inputs.py).
    rep = analyze([str(tmp_path / "empty.jsonl")], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.rows_read == 0 and rep.accounting.files_skipped == {str(tmp_path / "empty.jsonl"): "empty"}


def test_unrecognisable_file_is_a_clear_error(tmp_path):
    p = tmp_path / "broken.jsonl"
    p.write_text("\n{not json\n")
    with pytest.raises(DialectError, match="no records"):
        analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    # Only blank lines: an empty file, skipped (tests/hostile/test_inputs.py)
    p.write_text("\n\n")
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.files_skipped == {str(p): "empty"}


def test_header_only_csv_reports_zero(tmp_path, frame):
    p = write_frame(frame.head(0), tmp_path / "h.csv")
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.rows_read == 0 and rep.totals["cost"] in (0, Decimal(0))


def test_duplicate_request_ids_keep_the_row_with_most_tokens(tmp_path):
    rows = [dict(ROWS[0], output_tokens=10), dict(ROWS[0]), dict(ROWS[0], output_tokens=50), ROWS[1]]
    p = write_frame(canonical_frame(rows), tmp_path / "d.csv")
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.duplicates == 2 and rep.totals["cost"] == TOTAL
    off = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl"), dedupe=False))
    assert off.accounting.duplicates == 0 and off.totals["requests"] == 4


def test_duplicates_across_files_and_containers(tmp_path, frame):
    a = write_frame(frame, tmp_path / "a.csv")
    b = write_frame(frame, tmp_path / "b.parquet")
    rep = analyze([str(a), str(b)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.duplicates == 2 and rep.totals["cost"] == TOTAL


def test_timestamp_forms(tmp_path):
    forms = ["2026-10-10T10:00:00Z", "2026-10-10T12:00:00+02:00", "2026-10-10 10:00:00", "2026-10-10T10:00:00",
             "1791626400", "1791626400000", "2026-10-10T10:00:00.123456Z"]
    rows = [dict(ROWS[0], request_id=str(i), timestamp=t) for i, t in enumerate(forms)]
    p = write_frame(canonical_frame(rows), tmp_path / "t.csv")
    rep = analyze([str(p)], ["hour"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.quarantined == 0
    assert rep.rows["hour"].to_list() == ["2026-10-10 10:00"]


def test_jsonl_quarantine_has_editor_line_numbers_on_the_fast_path(tmp_path):
    """Blank lines and a bad value, but no malformed line: the fast NDJSON reader prices the file, and
    the quarantine file still names the line a user sees in an editor."""
    good = json.dumps(dict(ROWS[0]))
    bad = json.dumps(dict(ROWS[1], input_tokens="lots"))
    p = tmp_path / "log.jsonl"
    p.write_text(f"{good}\n\n\n{bad}\n")
    q = tmp_path / "q.jsonl"
    rep = analyze([str(p)], ["model"], Options(quarantine=str(q)))
    assert (rep.accounting.rows_read, rep.accounting.priced, rep.accounting.quarantined) == (2, 1, 1)
    [entry] = [json.loads(x) for x in q.read_text().splitlines()]
    assert entry["line"] == 4 and entry["reason"] == "input_tokens is not a number (lots)"


def test_malformed_json_line_is_quarantined_not_fatal(tmp_path):
    good = json.dumps(dict(ROWS[0]))
    p = tmp_path / "log.jsonl"
    p.write_text(f'{good}\n{{"request_id": "b", "timestamp": \n{json.dumps(dict(ROWS[1]))}\n')
    q = tmp_path / "q.jsonl"
    rep = analyze([str(p)], ["model"], Options(quarantine=str(q)))
    assert (rep.accounting.priced, rep.accounting.quarantined) == (2, 1)
    assert rep.totals["cost"] == TOTAL
    [entry] = [json.loads(x) for x in q.read_text().splitlines()]
    assert entry["line"] == 2 and entry["reason"].startswith("not a JSON object")


def test_csv_non_integer_count_falls_back_to_the_robust_path(tmp_path):
    """The fast CSV path parses counts natively; a value like 3.5 fails it, and the robust retry
    quarantines just that row, with its line number."""
    df = canonical_frame(ROWS + [dict(ROWS[1], request_id="c")]).with_columns(pl.col("input_tokens").cast(pl.String))
    df = df.with_columns(pl.when(pl.col("request_id") == "c").then(pl.lit("3.5")).otherwise(pl.col("input_tokens"))
                         .alias("input_tokens"))
    p = tmp_path / "log.csv"
    df.write_csv(p)
    q = tmp_path / "q.jsonl"
    rep = analyze([str(p)], ["model"], Options(quarantine=str(q)))
    assert (rep.accounting.priced, rep.accounting.quarantined, rep.totals["cost"]) == (2, 1, TOTAL)
    [entry] = [json.loads(x) for x in q.read_text().splitlines()]
    assert entry["line"] == 4 and entry["reason"] == "input_tokens is not a whole number (3.5)"


def test_jsonl_key_first_seen_late_still_counts(tmp_path):
    """Detection peeks at the first records; pricing must not: a count that first appears on line 61
    is read (a missed key would silently price it at $0)."""
    lines = [json.dumps({"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 0,
                         "output_tokens": 0})] * 60
    lines.append(json.dumps({"timestamp": "2026-10-08T00:00:00Z", "model": "claude-sonnet-4-5", "input_tokens": 0,
                             "output_tokens": 0, "cache_read_tokens": 1_000_000, "service_tier": "batch"}))
    p = tmp_path / "late.jsonl"
    p.write_text("\n".join(lines) + "\n")
    rep = analyze([str(p)], ["service_tier"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert dict(zip(rep.rows["service_tier"], rep.rows["cost"])) == {"batch": Decimal("0.15"), "standard": 0}


def test_unsplit_cache_writes_are_5m_and_residuals_too(tmp_path):
    p = tmp_path / "cw.csv"
    p.write_text("timestamp,Model,input_tokens,output_tokens,cache_write_tokens,cache_write_1h_tokens,cost_center\n"
                 "2026-10-08T00:00:00Z,claude-sonnet-4-5,0,0,1000000,,a\n"      # all 5m: $3.75
                 "2026-10-08T00:00:00Z,claude-sonnet-4-5,0,0,1000000,400000,b\n"  # 600K 5m + 400K 1h: 2.25 + 2.40
                 "2026-10-08T00:00:00Z,claude-sonnet-4-5,0,0,1000,4000,c\n")      # split exceeds total: quarantined
    q = tmp_path / "q.jsonl"
    rep = analyze([str(p)], ["cost_center"], Options(quarantine=str(q)))
    assert dict(zip(rep.rows["cost_center"], rep.rows["cost"])) == {"a": Decimal("3.75"), "b": Decimal("4.65")}
    assert rep.accounting.quarantined == 1
    assert "exceeds cache_write_tokens" in q.read_text()


def test_no_phantom_groups_after_dedupe(tmp_path):
    """A group whose only row is a losing duplicate disappears; it is not shown with 0 requests."""
    p = tmp_path / "d.csv"
    p.write_text("timestamp,model,input_tokens,output_tokens,request_id,service_tier\n"
                 "2026-10-08T00:00:00Z,claude-nope,10,10,X,\n"
                 "2026-10-08T00:00:00Z,claude-sonnet-4-5,1000,1000,X,\n"
                 "2026-10-08T00:00:00Z,claude-sonnet-4-5,1,1,Y,batch\n"
                 "2026-10-08T00:00:00Z,claude-sonnet-4-5,5,5,Y,\n")
    rep = analyze([str(p)], ["model", "service_tier"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.rows["requests"].to_list() == [2] and rep.rows["service_tier"].to_list() == ["standard"]
    assert rep.accounting.duplicates == 2 and rep.accounting.unpriced_models == {}


def test_outputs_and_quarantine_in_the_log_directory_are_not_read_back(tmp_path, frame):
    logs = tmp_path / "logs"
    logs.mkdir()
    write_frame(frame, logs / "a.csv")
    q = logs / "llm-cost-quarantine.jsonl"
    q.write_text('{"file": "x", "line": 1, "reason": "r", "raw": "{}"}\n')
    (logs / "report.csv").write_text("model,cost\nx,1\n")
    rep = analyze([str(logs)], ["model"], Options(quarantine=str(q), outputs=(str(logs / "report.csv"),)))
    assert rep.accounting.files == 1 and rep.totals["cost"] == TOTAL


def test_implausible_counts_are_quarantined(tmp_path):
    rows = [dict(ROWS[0], input_tokens=6 * 10**18), ROWS[1]]
    p = write_frame(canonical_frame(rows), tmp_path / "big.csv")
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rep.accounting.quarantined == 1 and rep.totals["cost"] == Decimal("0.003")


# -- file sets: many small files read as one stream of large batches ---------------------------------

_line_text = st.lists(st.sampled_from(['a', 'b', '{', '}', '"', ':', '→', 'é', ' ', '\r', b'\xe9', b'\xff', b'\xc3']),
                      max_size=12).map(lambda parts: b"".join(p if isinstance(p, bytes) else p.encode() for p in parts))


def _is_utf8(b: bytes) -> bool:
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(files=st.lists(st.tuples(st.lists(_line_text, max_size=6), st.booleans(), st.booleans()), min_size=1, max_size=7),
       batch=st.integers(min_value=1, max_value=64))
def test_file_set_lines_match_a_line_by_line_reading(tmp_path_factory, files, batch):
    """Whatever the files (empty, no final newline, CRLF, blank lines, multi-byte text, bytes that are
    not UTF-8) and however they fall into batches, every line comes out once, in order, with its
    file, its line in that file and its number across the set; a line is `_bad` exactly when it
    holds bytes that are not UTF-8, and any other line is its text. A single file read by
    `bounded_lines` (in pieces of any size) gives the same lines."""
    d = tmp_path_factory.mktemp("set")
    paths, expected = [], []
    for i, (lines, final_newline, crlf) in enumerate(files):
        p = d / f"f{i}.jsonl"
        eol = b"\r\n" if crlf else b"\n"
        content = eol.join(lines) + (eol if final_newline and lines else b"")
        p.write_bytes(content)
        paths.append(str(p))
        seen = content.split(b"\n")  # what an editor shows: no line after a final newline
        if seen[-1] == b"":
            seen.pop()
        expected += [(text.removesuffix(b"\r"), str(p), n) for n, text in enumerate(seen, start=1)]
    got = file_set_lines(paths, batch_bytes=batch).collect(engine="streaming")
    assert got.columns == [LINE, "_path", "_row", "_line_no", "_bad"]
    assert list(zip(got["_path"], got["_line_no"])) == [(p, n) for _, p, n in expected]
    assert got["_bad"].to_list() == [not _is_utf8(text) for text, _, _ in expected]
    assert [t for t, bad in zip(got[LINE], got["_bad"]) if not bad] == [
        text.decode() for text, _, _ in expected if _is_utf8(text)]
    assert all("\ufffd" in t for t, bad in zip(got[LINE], got["_bad"]) if bad)
    assert got["_row"].to_list() == list(range(1, len(expected) + 1))
    # a plan that asks for neither file nor line (a report) reads the same lines
    lines = file_set_lines(paths, batch_bytes=batch).select(LINE, "_row").collect(engine="streaming")
    assert lines.rows() == list(zip(got[LINE], got["_row"]))
    # one file at a time, in pieces of `batch` bytes
    import analyzer.sources as sources
    old, sources.PIECE_BYTES = sources.PIECE_BYTES, batch
    try:
        single = pl.concat([bounded_lines(p, None).collect() for p in paths])
    finally:
        sources.PIECE_BYTES = old
    assert single.select(LINE, "_bad").rows() == got.select(LINE, "_bad").rows()
    assert single["_row"].to_list() == got["_line_no"].to_list()


def test_file_set_lines_filter_and_projection_reach_the_reader(tmp_path):
    paths = []
    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_text(f'{{"n":{i},"type":"user"}}\n{{"n":{i},"type":"assistant"}}\n')
        paths.append(str(tmp_path / f"{i}.jsonl"))
    lf = file_set_lines(paths, batch_bytes=40).filter(pl.col(LINE).str.contains("assistant")).select("_path", "_line_no")
    got = lf.collect(engine="streaming")
    assert got.rows() == [(p, 2) for p in paths]
    assert file_set_lines(paths).head(4).collect().height == 4


def test_file_set_lines_filter_on_a_file_name_and_refuse_what_is_not_a_regular_file(tmp_path):
    paths = []
    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_text(f'{{"n":{i}}}\n{{"m":{i}}}\n')
        paths.append(str(tmp_path / f"{i}.jsonl"))
    got = file_set_lines(paths, batch_bytes=10).filter(pl.col("_path") == paths[1]).collect(engine="streaming")
    assert got.select(LINE, "_line_no").rows() == [('{"n":1}', 1), ('{"m":1}', 2)]
    os.mkfifo(tmp_path / "pipe.jsonl")
    with open(os.open(tmp_path / "pipe.jsonl", os.O_RDWR), "wb"):  # (a writer, so that opening it does not wait)
        with pytest.raises(SourceError, match="pipe.jsonl: not a regular file"):
            file_set_lines([paths[0], str(tmp_path / "pipe.jsonl")]).collect()


def test_file_set_lines_name_an_unreadable_file_and_mark_bytes_that_are_not_utf8(tmp_path):
    good = tmp_path / "a.jsonl"
    good.write_text('{"a":1}\n')
    with pytest.raises(SourceError, match="gone.jsonl: cannot read"):
        file_set_lines([str(good), str(tmp_path / "gone.jsonl")]).collect()
    bad = tmp_path / "b.jsonl"
    bad.write_bytes(b'{"a":"\xff"}\n{"a":"\xef\xbf\xbd"}\n')  # (the second: a real U+FFFD, valid UTF-8)
    got = file_set_lines([str(good), str(bad)]).collect()
    assert got.select(LINE, "_bad").rows() == [('{"a":1}', False), ('{"a":"\ufffd"}', True), ('{"a":"\ufffd"}', False)]


def test_files_are_read_where_the_system_cannot_be_asked_to_read_ahead(tmp_path, monkeypatch):
    from analyzer import sources

    monkeypatch.delattr(os, "posix_fadvise")  # macOS
    monkeypatch.setattr(sources, "_ADVISE", None)
    paths = []
    for i in range(3):
        (tmp_path / f"{i}.jsonl").write_text(f'{{"n":{i}}}\n')
        paths.append(str(tmp_path / f"{i}.jsonl"))
    assert file_set_lines(paths).collect()[LINE].to_list() == ['{"n":0}', '{"n":1}', '{"n":2}']
    assert list(sources.heads(paths)) == [b'{"n":0}\n', b'{"n":1}\n', b'{"n":2}\n']


def test_a_batch_buffer_is_filled_again_only_when_nothing_still_reads_it():
    from analyzer.sources import _batch_buffer

    buf = _batch_buffer(None, 8)
    buf.getbuffer()[:8] = b"first\n.."
    kept = buf.getvalue()  # a reader that kept the bytes: they are copied before the buffer is refilled
    assert _batch_buffer(buf, 4) is buf
    buf.getbuffer()[:4] = b"two\n"
    assert kept == b"first\n.." and buf.getvalue()[:4] == b"two\n"
    with buf.getbuffer() as view:  # a reader that holds a view of the memory: a new buffer
        again = _batch_buffer(buf, 4)
        assert again is not buf and len(again.getvalue()) == 4 and bytes(view[:4]) == b"two\n"


def test_heads_are_each_files_first_bytes_in_order_and_none_for_what_cannot_be_read(tmp_path):
    from analyzer.sources import HEAD_BYTES, heads

    paths = []
    for i in range(70):  # more than the files opened ahead
        p = tmp_path / f"{i}.jsonl"
        p.write_bytes(b"x" * (i * 200))
        paths.append(str(p))
    paths.insert(5, str(tmp_path / "gone.jsonl"))
    (tmp_path / "other.csv").write_text("a,b\n")
    paths.insert(9, str(tmp_path / "other.csv"))  # only what looks_like looks at is read
    got = list(heads(paths))
    assert got[5] is None and got[9] is None and len(got) == len(paths)
    assert [len(h) for h in got[:5] + got[6:9] + got[10:]] == [min(i * 200, HEAD_BYTES) for i in range(70)]


_cell = st.lists(st.sampled_from(["a", "7", " ", ",", "\n", "\r\n", '"', "é", b"\xe9"]), max_size=5).map(
    lambda parts: b"".join(p if isinstance(p, bytes) else p.encode() for p in parts))


@settings(max_examples=80, deadline=None)
@given(rows=st.lists(st.tuples(_cell, _cell), max_size=8), piece=st.integers(min_value=1, max_value=40),
       final_newline=st.booleans())
def test_bounded_csv_reads_in_pieces_what_polars_reads_whole(rows, piece, final_newline):
    """CSV read in pieces cut at record boundaries (quoted newlines and doubled quotes included) gives
    the records the whole file gives, numbered alike; a record is `_bad` exactly when its bytes are
    not UTF-8, and any other record is as read whole."""
    import tempfile

    import analyzer.sources as sources

    def quoted(b: bytes) -> bytes:
        return b'"' + b.replace(b'"', b'""') + b'"'

    body = b"".join(quoted(a) + b"," + quoted(b) + b"\n" for a, b in rows)
    data = b"x,y\n" + (body if final_newline else body.removesuffix(b"\n"))
    with tempfile.NamedTemporaryFile(suffix=".csv", delete=False) as f:
        f.write(data)
    try:
        whole = pl.read_csv(data, infer_schema=False, encoding="utf8-lossy")
        old, sources.PIECE_BYTES = sources.PIECE_BYTES, piece
        try:
            got = bounded_csv(f.name, None).collect()
        finally:
            sources.PIECE_BYTES = old
    finally:
        os.unlink(f.name)
    assert got.height == whole.height == len(rows)
    assert got["_row"].to_list() == list(range(2, 2 + len(rows)))
    bad = [not (_is_utf8(a) and _is_utf8(b)) for a, b in rows]
    assert got["_bad"].to_list() == bad
    good = [i for i, b in enumerate(bad) if not b]
    assert got.select("x", "y")[good].rows() == whole.select("x", "y")[good].rows()


def test_a_record_longer_than_many_blocks_is_not_searched_again_at_every_block():
    """A CSV with one 20 MB field took 13 CPU s to peek: each 16 KB block was joined to the record so
    far and the whole searched again (quadratic). A block with no newline can end no record: it is
    set aside, and the record is joined and searched once."""
    from analyzer import sources

    calls = []

    def cut(buf: bytes) -> int:
        calls.append(len(buf))
        return sources._record_cut(buf)

    field = [b"y" * 100] * 2000  # a 200 KB field in 100-byte blocks
    blocks = [b"h1,h2\nr1,", *field, b"\nr2,w\n"]
    pieces = list(sources._pieces(iter(blocks), cut))
    assert b"".join(pieces) == b"".join(blocks)
    assert pieces == [b"h1,h2\n", b"r1," + b"".join(field) + b"\nr2,w\n"]
    assert len(calls) == 2  # the first block and the block that ends the long record: not 2,002


@given(st.lists(st.lists(st.sampled_from([b"a", b",", b'"', b"\n"]), max_size=30).map(b"".join), max_size=40))
@settings(max_examples=300, deadline=None)
def test_pieces_end_at_record_cuts_whatever_the_blocks(blocks):
    """However the bytes are cut into blocks, the pieces hold every byte in order and each piece but
    the last ends where _record_cut would cut the whole text."""
    from analyzer import sources

    data = b"".join(blocks)
    pieces = list(sources._pieces(iter(blocks), sources._record_cut))
    joined = b"".join(pieces)
    assert joined == data or joined == data + b"\n"
    for p in pieces[:-1]:
        assert sources._record_cut(p) == len(p) - 1
    # The CSV reader's one-pass version cuts exactly where the general one does.
    assert list(sources._csv_pieces(iter(blocks))) == pieces


def test_a_quoted_field_of_many_lines_is_searched_once(monkeypatch):
    """A 20 MB quoted field full of newlines took 42 CPU s to read: each block joined to the record
    so far, and the whole searched again. Each block is now searched once."""
    from analyzer import sources

    searched = []
    real = sources._record_cut_after
    monkeypatch.setattr(sources, "_record_cut_after", lambda b, q: searched.append(len(b)) or real(b, q))
    lines = [b"y" * 50 + b"\n"] * 1000
    blocks = [b"h1,h2\nr1,\"", *lines, b"\"\nr2,w\n"]
    pieces = list(sources._csv_pieces(iter(blocks)))
    assert pieces == [b"h1,h2\n", b"r1,\"" + b"".join(lines) + b"\"\nr2,w\n"]
    assert sum(searched) == sum(map(len, blocks))  # every byte once, not 1,000 times


# -- a CSV header's quoted names (RFC 4180: a quote inside a quoted name is doubled) -----------------

HEADER = b'timestamp,model,input_tokens,output_tokens,"te""am","a,b"\n'
BODY = b'2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100,"x""y",1\n'


@pytest.mark.parametrize("gz", [False, True])
def test_a_doubled_quote_in_a_csv_header_names_the_column_once_quoted(tmp_path, gz):
    """Polars names `"te""am"` `te""am`; the column is `te"am` (native and piecewise readers alike)."""
    p = tmp_path / ("q.csv.gz" if gz else "q.csv")
    p.write_bytes(gzip.compress(HEADER + BODY) if gz else HEADER + BODY)
    rep = analyze([str(p)], ["te\"am", "a,b"], Options())
    assert list(rep.rows["te\"am"]) == ['x"y'] and list(rep.rows["a,b"]) == ["1"]
    assert rep.rows["cost"][0] == Decimal("0.0045")


def test_priced_rows_with_a_quoted_name_read_back_to_the_same_report(tmp_path):
    from click.testing import CliRunner

    from analyzer.cli import main
    src = tmp_path / "q.csv"
    src.write_bytes(HEADER + BODY)
    out = tmp_path / "priced.csv"
    assert CliRunner().invoke(main, ["price", str(src), "-o", str(out), "-q"]).exit_code == 0
    assert b'"te""am"' in out.read_bytes().splitlines()[0]
    again = analyze([str(out)], ["te\"am"], Options())
    assert list(again.rows["te\"am"]) == ['x"y'] and again.rows["cost"][0] == Decimal("0.0045")


def test_a_quoted_name_that_unescapes_to_another_column_keeps_both(tmp_path):
    p = tmp_path / "twin.csv"
    p.write_bytes(b'timestamp,model,input_tokens,output_tokens,"x""""y","x""y"\n'
                  b'2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100,1,2\n')
    assert open_source(str(p)).columns[4:] == ['x""y', 'x"y']  # both unescaped: still two names
    p.write_bytes(b'timestamp,model,input_tokens,output_tokens,"x""y",x""y\n'
                  b'2026-10-10T10:00:00Z,claude-sonnet-4-5,1000,100,1,2\n')
    src = open_source(str(p))
    assert len(set(src.columns)) == len(src.columns) == 6


@pytest.mark.parametrize("gz", [False, True])
def test_a_byte_order_mark_before_the_first_json_line_is_not_part_of_its_record(tmp_path, gz):
    """`\\ufeff{...}` on line 1 was quarantined as unreadable: its cost left out of the total."""
    text = "\ufeff" + "".join(json.dumps(r) + "\n" for r in ROWS)
    p = tmp_path / ("bom.jsonl.gz" if gz else "bom.jsonl")
    p.write_bytes(gzip.compress(text.encode()) if gz else text.encode())
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert (rep.accounting.priced, rep.accounting.quarantined) == (2, 0)
    assert sum(rep.rows["cost"]) == TOTAL


@pytest.mark.parametrize("name", ["own.parquet", "own.csv", "own.csv.gz"])
def test_a_log_with_its_own_row_and_bad_columns_is_read(tmp_path, name):
    """A table's own `_row` / `_bad` column clashed with the row numbers the readers add ("cannot add
    row_index with name '_row'", exit 2). They are left out; every row prices, `price` numbers rows
    by their place in the file, not by the file's column."""
    from click.testing import CliRunner

    from analyzer.cli import main
    frame = pl.DataFrame({"timestamp": ["2026-10-10T10:00:00Z"] * 2, "model": ["claude-sonnet-4-5"] * 2,
                          "input_tokens": [1_000_000, 2_000], "output_tokens": [100, 10],
                          "_row": [70, 80], "_bad": ["yes", "true"]})
    p = tmp_path / name
    if name.endswith(".parquet"):
        frame.write_parquet(p)
    else:
        text = frame.write_csv().encode()
        p.write_bytes(gzip.compress(text) if name.endswith(".gz") else text)
    rep = analyze([str(p)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    # 1,002,000 input tokens at $3/M, 110 output at $15/M
    assert rep.totals["cost"] == Decimal("3.006") + Decimal("0.00165")
    assert (rep.accounting.priced, rep.accounting.quarantined) == (2, 0)
    out = tmp_path / "priced.csv"
    assert CliRunner().invoke(main, ["price", str(p), "-o", str(out), "-q"]).exit_code == 0
    rows = pl.read_csv(out)
    assert rows["source_row"].to_list() == ([1, 2] if name.endswith(".parquet") else [2, 3])
    assert "_row" not in rows.columns and "_bad" not in rows.columns


@pytest.mark.parametrize("header", [b'te"am', b'"te"am"x'])
@pytest.mark.parametrize("gz", [False, True])
def test_a_bare_quote_in_a_csv_header_is_named_not_an_empty_file(tmp_path, header, gz):
    """Polars reads a quote that opens inside a name as a quoted field running to the end of the file:
    the file was "cannot read (empty CSV)". The error now names line 1 and the column, exit 2."""
    from click.testing import CliRunner

    from analyzer.cli import main
    text = b"timestamp,model,input_tokens,output_tokens," + header + b"\n" + BODY
    p = tmp_path / ("h.csv.gz" if gz else "h.csv")
    p.write_bytes(gzip.compress(text) if gz else text)
    res = CliRunner().invoke(main, ["report", str(p)])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert "line 1 (the header): a quote inside a column name" in res.output
    assert repr(header.decode()) in res.output and len(res.output.strip().splitlines()) == 1


def test_a_byte_order_mark_starting_one_file_of_a_tree_is_not_part_of_its_record(tmp_path):
    """Files of a tree are read in one batch: the BOM is stripped from that file's first line alone,
    the lines before and after it read as they are (each of the three lines bills)."""
    def line(mid: str, out: int) -> str:
        return json.dumps({"type": "assistant", "sessionId": "s", "timestamp": "2026-10-10T10:00:00Z",
                           "requestId": f"req_{mid}", "message": {"id": f"msg_{mid}", "model": "claude-sonnet-4-5",
                                                                  "usage": {"input_tokens": 1000, "output_tokens": out}}})
    proj = tmp_path / "projects" / "-home-dev-acme"
    proj.mkdir(parents=True)
    (proj / "a.jsonl").write_text(line("a", 100) + "\n")
    (proj / "b.jsonl").write_text("\ufeff" + line("b", 200) + "\n" + line("c", 300) + "\n", encoding="utf-8")
    rep = analyze([str(tmp_path)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl")))
    assert (rep.accounting.rows_read, rep.accounting.priced, rep.accounting.quarantined) == (3, 3, 0)
    assert rep.totals["cost"] == (3 * 1000 * 3 + 600 * 15) / Decimal(10**6)  # Sonnet 4.5: $3 in, $15 out


# --- a key named twice: the first records are sampled as the readers read them ----------------------

# Polars' decoder (and a JSON path after _json_text.first_keys_only) keeps a key's first value; the
# sample used json.loads, which keeps the last. This line reads as a Messages response (`type` message)
# but was detected, from `type` result, as Claude Code's print-mode output, whose reader found no result
# in it: both requests vanished, 0 rows read, exit 0.
TWICE = ('{"type": "message", "type": "result", "session_id": "s1", "id": "msg_1", "role": "assistant", '
         '"model": "claude-sonnet-4-5-20250929", "content": [], "modelUsage": {}, '
         '"usage": {"input_tokens": 1000, "output_tokens": 0}}')


def test_a_key_named_twice_is_sampled_with_its_first_value_as_read(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text(f"{TWICE}\n{TWICE.replace('msg_1', 'msg_2')}\n")
    src = open_source(str(path), index=0)
    assert src.sample[0]["type"] == "message"
    report = analyze([str(path)], ["model"], Options(quarantine=str(tmp_path / "q.jsonl"),
                                                     batch_time="2026-10-08T00:00:00Z"))
    assert report.dialects == {str(path): "anthropic-messages"}
    a = report.accounting
    assert (a.rows_read, a.priced, report.totals["input_tokens"]) == (2, 2, 2000)
    assert report.totals["cost"] == Decimal("0.006")  # 2 x 1,000 x $3 per million


def test_a_json_documents_sample_keeps_a_nested_keys_first_value(tmp_path):
    # (a record's own key twice is refused when the document is read: see sources.json_to_lines)
    path = tmp_path / "d.json"
    path.write_text('[{"usage": {"input_tokens": 7, "input_tokens": 9}, "k": {"a": {"b": 1, "b": 2}}}]')
    src = open_source(str(path), index=0)
    assert src.sample == [{"usage": {"input_tokens": 7}, "k": {"a": {"b": 1}}}]
