"""A run retried after a malformed line reads only the lines that need it robustly (line_retry): the
rest by the fast plan, piece by piece, halving a piece that fails. These tests hold the rows to the
robust reading of the whole file, value for value (every column, `_raw` and `_reason` too), over
files mixing good lines with every kind of line the fast plan fails on or must not read, at piece
sizes that split them anywhere; and a report's accounting and quarantine file to the old retry's."""

from __future__ import annotations

import json

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import line_retry, pipeline, sources

HEAD = '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-sonnet-4-5","input_tokens":1,"output_tokens":2,"team":"a"}'


def good(i: int) -> str:
    return (f'{{"timestamp":"2026-10-08T{i % 24:02d}:00:00Z","model":"claude-haiku-4-5","input_tokens":{10 + i},'
            f'"output_tokens":3,"team":"t{i % 3}","request_id":"r{i}"}}')


# Lines the fast plan fails on (torn, a count of the wrong type, two records, not an object), must not
# read (not flat: a float or a nested value in a text field renders otherwise through the decoder; a
# byte that is not UTF-8; a BOM), or that are no record (blank).
ODD = [
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens": tru',
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":1.5,"output_tokens":1}',
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":"7","output_tokens":1}',
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":-3,"output_tokens":1}',
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":1,"output_tokens":1,"team":1.0}',
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":1,"output_tokens":1,"team":{"a": 1}}',
    '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":1,"output_tokens":1,"team":"a\\"b"}',
    '{"timestamp":"not a time","model":"claude-haiku-4-5","input_tokens":1,"output_tokens":1}',
    '{"input_tokens":1,"output_tokens":1}{"input_tokens":2,"output_tokens":2}',
    '[1, 2]', '7', '{}', '', '   ', '\t', 'garbage',
    '\ufeff{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens":4,"output_tokens":1}',
]
BAD_BYTES = b'{"timestamp":"2026-10-08T00:00:00Z","model":"caf\xe9","input_tokens":1,"output_tokens":1}'


def _write(path, lines: list[str | bytes]) -> str:
    path.write_bytes(b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines) + b"\n")
    return str(path)


@pytest.fixture
def robust_lines(monkeypatch) -> list:
    """Each file's count of lines read robustly (a run by parts appends its _Piece)."""
    made = []

    class Counted(line_retry._Piece):
        def __init__(self) -> None:
            super().__init__()
            made.append(self)

    monkeypatch.setattr(line_retry, "_Piece", Counted)
    return made


def _frame(path: str, by_parts: bool, lines: dict | None = None) -> pl.DataFrame:
    with pytest.MonkeyPatch.context() as m, sources.one_reading():
        if not by_parts:
            m.setattr(line_retry, "line_local", lambda d, src: False)
        loaded = pipeline.read_logs([path], pipeline.Options(), robust=True, lines=lines)
        return loaded.frame.collect()


@settings(max_examples=40, deadline=None)
@given(picks=st.lists(st.one_of(st.integers(0, 60), st.sampled_from(ODD), st.just(BAD_BYTES)), min_size=1,
                      max_size=40),
       piece=st.sampled_from([64, 300, 1 << 20]))
def test_rows_read_by_parts_are_the_robust_reading_of_the_whole_file(tmp_path_factory, picks, piece):
    path = _write(tmp_path_factory.mktemp("parts") / "log.jsonl", [HEAD, *(good(p) if isinstance(p, int) else p
                                                                          for p in picks)])
    with pytest.MonkeyPatch.context() as m:
        m.setattr(line_retry, "PIECE", piece)
        parts = _frame(path, True)
    whole = _frame(path, False)
    assert parts.columns == whole.columns
    assert parts.equals(whole, null_equal=True)


def test_a_piece_where_every_line_fails_is_read_robustly_and_alike(tmp_path, monkeypatch):
    # Every count a float: each piece spends its attempts (_BUDGET), then is read robustly whole.
    monkeypatch.setattr(line_retry, "PIECE", 2000)
    path = _write(tmp_path / "f.jsonl", [HEAD] + [good(i).replace('"output_tokens":3', '"output_tokens":3.0')
                                                 for i in range(500)])
    assert _frame(path, True).equals(_frame(path, False), null_equal=True)


def test_the_quarantine_pass_reads_only_the_lines_asked_for(tmp_path):
    path = _write(tmp_path / "q.jsonl", [HEAD, good(1), ODD[0], good(2), "", ODD[3]])
    rows = _frame(path, True, lines={path: pl.Series([3, 6])})
    assert rows["source_row"].to_list() == [3, 6]
    assert rows["_ok"].to_list() == [False, False]
    assert rows["_raw"].to_list() == [ODD[0], ODD[3]]


@pytest.mark.parametrize("at", ["first", "middle", "last"])
def test_a_report_with_a_torn_line_accounts_and_quarantines_as_the_whole_robust_reading(tmp_path, monkeypatch, at,
                                                                                        robust_lines):
    lines = [good(i) for i in range(300)] + [good(5)]  # (a duplicate id too)
    where = {"first": 0, "middle": 150, "last": len(lines)}[at]
    lines[where:where] = [ODD[0], ODD[3]]
    path = _write(tmp_path / "r.jsonl", lines)
    monkeypatch.setattr(line_retry, "PIECE", 4096)

    def run(by_parts: bool, name: str):
        with pytest.MonkeyPatch.context() as m:
            if not by_parts:
                m.setattr(line_retry, "line_local", lambda d, src: False)
            opts = pipeline.Options(quarantine=str(tmp_path / name))
            rep = pipeline.analyze([path], ["day", "model", "team"], opts)
            return rep, (tmp_path / name).read_text()

    (parts, q_parts), (whole, q_whole) = run(True, "a.jsonl"), run(False, "b.jsonl")
    # Robustly read: the torn line alone, by the aggregate's reading and again by the quarantine pass
    # (which reads the two quarantined lines alone; the negative count is a flat line: the fast plan's).
    assert [p.robust_lines for p in robust_lines] == [1, 1]
    assert parts.rows.equals(whole.rows) and parts.totals == whole.totals
    assert parts.accounting == whole.accounting or vars(parts.accounting) | {"quarantine_file": None} == \
        vars(whole.accounting) | {"quarantine_file": None}
    assert q_parts == q_whole
    assert [json.loads(x)["line"] for x in q_parts.splitlines()] == [where + 1, where + 2]
    assert parts.accounting.quarantined == 2 and parts.accounting.duplicates == 1


MESSAGE = ('{"id":"msg_%d","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":'
           '[{"type":"text","text":"hi"}],"usage":{"input_tokens":%d,"output_tokens":5,"cache_read_input_tokens":0}}')


def test_mapped_json_lines_read_by_parts_are_the_robust_reading(tmp_path, monkeypatch, robust_lines):
    monkeypatch.setattr(line_retry, "PIECE", 1500)
    lines = [MESSAGE % (i, 100 + i) for i in range(60)]
    # (a line cut short is quarantined by the fast plan itself; one that looks whole fails it)
    lines[7:7] = ['{"id":"msg_t","type":"message","usage":{"input_tokens": tru}}', '{"id":"msg_c","usage":{"in']
    lines[30:30] = [(MESSAGE % (99, 1)).replace('"input_tokens":1', '"input_tokens":"x"'), ""]
    path = _write(tmp_path / "m.jsonl", lines)
    parts, whole = _frame(path, True), _frame(path, False)
    assert parts.height == 64 - 1 and parts.equals(whole, null_equal=True)
    assert robust_lines[0].robust_lines == 1  # (the line that looks whole)


def _fixtures() -> list:
    from pathlib import Path
    root = Path(__file__).resolve().parent.parent / "fixtures" / "dialects"
    return sorted(str(p.relative_to(root)) for p in root.glob("*/*.jsonl"))


@pytest.mark.parametrize("name", _fixtures())
def test_every_jsonl_fixture_with_a_broken_line_reads_by_parts_as_robustly_whole(tmp_path, monkeypatch, name,
                                                                                 robust_lines):
    # Each format's own fixture, twice (a piece boundary inside it), with a line that looks whole but
    # is not JSON: where the format is read by parts, the rows are the whole robust reading's.
    from pathlib import Path
    text = (Path(__file__).resolve().parent.parent / "fixtures" / "dialects" / name).read_bytes()
    text = text if text.endswith(b"\n") else text + b"\n"
    path = tmp_path / Path(name).name
    path.write_bytes(text + b'{"id": "x", "usage": {"input_tokens": tru}}\n' + text)
    monkeypatch.setattr(line_retry, "PIECE", max(len(text) // 3, 64))
    try:
        parts = _frame(str(path), True)
    except Exception as e:  # (a fixture whose format refuses such a file refuses it either way)
        with pytest.raises(type(e)):
            _frame(str(path), False)
        return
    read = [p.robust_lines for p in robust_lines]
    whole = _frame(str(path), False)
    assert parts.equals(whole, null_equal=True)
    # Read by parts (Messages responses, batch results, OpenAI): the broken line alone robustly.
    assert read in ([], [1])
