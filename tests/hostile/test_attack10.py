"""Attack on the retry by parts (analyzer/line_retry.py): a JSON Lines file whose fast pass fails is
read again in pieces, each by the fast plan, a failing piece in halves down to its failing lines,
which alone go through the robust plan. The report, accounting, quarantine file and `price` rows
must be the whole robust reading's, and a good line's verdict must not depend on the lines around it.

Found:
- Two readings at once of one file's rows read by parts (pl.collect_all over two plans on the rows
  `price_requests` returns) shared the stand-in's lines: one plan read the other's piece (rows lost
  or doubled, silently) or none (AttributeError traceback). Fixed: _Piece.lock.
- A key named twice that is not a count (a response's `model`): the fast plan reads the first value,
  the robust plan the last (docs/formats.md's known limit). By parts, which one a good line gets
  depends on its neighbours: alone among good lines it is the fast plan's, in a piece whose
  attempts are spent (many broken lines) the robust plan's. Fixed by robust4 (merged beside this
  branch): the robust reading sets aside each key an object names again, so it reads the first too.
- Not by parts (the code before it, 44a5acc, alike): a copy of a request whose model is empty took
  part in dedupe; written first it displaced its valid twin (the request priced by neither), written
  second it was a duplicate the quarantine file listed too. Fixed: a row its labels will quarantine
  does not compete (labels.fit); it is quarantined, never a duplicate (tests/test_dedupe_labels.py).
"""

from __future__ import annotations

import gzip

import polars as pl
import pytest

from analyzer import Options, analyze, line_retry, price_requests

TORN = '{"timestamp":"2026-10-08T00:00:00Z","model":"claude-haiku-4-5","input_tokens": tru'


def good(i: int, extra: str = "", team: str | None = None) -> str:
    return (f'{{"timestamp":"2026-10-08T{i % 24:02d}:00:00Z","model":"claude-haiku-4-5","input_tokens":{10 + i},'
            f'"output_tokens":3,"team":"{team or f"t{i % 3}"}","request_id":"r{i}"{extra}}}')


def _report(paths: list[str], by_parts: bool, quarantine, by=("day", "model", "team")):
    with pytest.MonkeyPatch.context() as m:
        if not by_parts:
            m.setattr(line_retry, "line_local", lambda d, src: False)
        rep = analyze(paths, list(by), Options(quarantine=str(quarantine)))
    acc = {k: v for k, v in vars(rep.accounting).items() if k != "quarantine_file"}
    return rep.rows, rep.totals, acc, quarantine.read_text()


def _alike(tmp_path, paths: list[str], by=("day", "model", "team")) -> tuple:
    parts = _report(paths, True, tmp_path / "parts.jsonl", by)
    whole = _report(paths, False, tmp_path / "whole.jsonl", by)
    assert parts[0].equals(whole[0]) and parts[1:] == whole[1:]
    return parts


def test_two_readings_at_once_of_rows_read_by_parts_agree(tmp_path, monkeypatch):
    # Before the fix: AttributeError ('NoneType' object has no attribute 'select') in most rounds,
    # different rows in the others.
    lines = [good(i) for i in range(6000)]
    for k in range(0, 6000, 997):
        lines[k] = TORN
    path = tmp_path / "race.jsonl"
    path.write_text("\n".join(lines) + "\n")
    monkeypatch.setattr(line_retry, "PIECE", 8192)
    priced, _ = price_requests([str(path)], Options(quarantine=str(tmp_path / "q.jsonl")))
    rows = priced.lazy().select("source_row", "cost")
    alone = rows.collect()
    assert alone.height == 6000 - 7
    for _ in range(3):
        both = pl.collect_all([rows, rows.filter(pl.col("source_row") % 2 == 0)])
        assert both[0].equals(alone)
        assert both[1].equals(alone.filter(pl.col("source_row") % 2 == 0))


@pytest.mark.parametrize("case", ["crlf_bom_no_final_newline", "gzip", "several_files", "long_lines",
                                  "duplicate_across_pieces", "late_key_and_dimension_in_a_bad_piece"])
def test_reports_read_by_parts_are_the_whole_robust_readings(tmp_path, monkeypatch, case):
    monkeypatch.setattr(line_retry, "PIECE", 2000)
    rows = [good(i) for i in range(200)]
    by = ("day", "model", "team")
    data: dict[str, bytes] = {}
    if case == "crlf_bom_no_final_newline":
        rows[100:100] = [TORN, "", "  \r", "[1]"]
        data["a.jsonl"] = b"\xef\xbb\xbf" + "\r\n".join(rows + [TORN]).encode()
    elif case == "gzip":
        rows[50:50] = [TORN]
        data["a.jsonl.gz"] = gzip.compress(("\n".join(rows) + "\n").encode())
    elif case == "several_files":
        for k in range(3):
            part = [good(i + 1000 * k) for i in range(150)] + [good(7)]  # (r7 in each: duplicates)
            if k != 1:
                part[40 * k:40 * k] = [TORN, "garbage"]
            data[f"f{k}.jsonl"] = ("\n".join(part) + "\n").encode()
    elif case == "long_lines":  # lines longer than a piece, good and bad
        rows[30] = good(30, team="x" * 5000)
        rows[60] = TORN + "y" * 5000
        rows[90] = good(90, extra=',"note":"' + "z" * 5000 + '"')
    elif case == "duplicate_across_pieces":  # the same id in a good piece and in a bad one: one winner
        rows[150] = good(5).replace('"input_tokens":15', '"input_tokens":999')
        rows[151] = TORN
    else:  # a key and a --by dimension first written after the sample, in the piece that breaks
        rows[170] = good(170, ',"cache_read_tokens":7,"project":"p1"')
        rows[171] = TORN
        by = ("day", "model", "project")
    for name, text in data.items() or {"a.jsonl": ("\n".join(rows) + "\n").encode()}.items():
        (tmp_path / name).write_bytes(text)
    paths = [str(tmp_path / n) for n in (data or {"a.jsonl": b""})]
    got, _, acc, quarantined = _alike(tmp_path, paths, by)
    assert acc["quarantined"] >= 1 and quarantined.count("\n") == acc["quarantined"]
    if case == "duplicate_across_pieces":
        assert acc["duplicates"] == 1
    if case == "late_key_and_dimension_in_a_bad_piece":
        assert got.filter(pl.col("project") == "p1")["cache_read_tokens"].to_list() == [7]


MESSAGE = ('{"id":"msg_%d","type":"message","role":"assistant","model":"claude-sonnet-4-5-20250929","content":'
           '[{"type":"text","text":"hi"}],"usage":{"input_tokens":%d,"output_tokens":5,"cache_read_input_tokens":0}}')


def test_a_good_line_is_priced_alike_whatever_breaks_around_it(tmp_path):
    lines = [MESSAGE % (i, 100 + i) for i in range(200)]
    lines[151] = lines[151].replace('"role"', '"model":"claude-opus-4-1","role"', 1)  # model named twice

    def models(name: str, text: list[str]) -> dict:
        path = tmp_path / name
        path.write_text("\n".join(text) + "\n")
        rep = analyze([str(path)], ["model"], Options(quarantine=str(tmp_path / f"q-{name}")))
        return {r["model"]: r["requests"] for r in rep.rows.iter_rows(named=True)}

    clean = models("clean.jsonl", lines)
    assert clean["claude-opus-4-1-20250805"] == 1  # (the fast reading: the first value)
    one = list(lines)
    one[10] = '{"id":"msg_t","type":"message","usage":{"input_tokens": tru}}'
    assert models("one.jsonl", one)["claude-opus-4-1-20250805"] == 1
    many = list(lines)
    for k in range(0, 200, 2):  # (line 151 stays; 100 broken lines spend the piece's attempts)
        many[k] = one[10]
    assert models("many.jsonl", many).get("claude-opus-4-1-20250805") == 1


COPY = '{"timestamp":"2026-10-08T06:00:00Z","model":"claude-haiku-4-5","input_tokens":64,"output_tokens":3,"request_id":"r1"}'
NO_MODEL = COPY.replace('"model":"claude-haiku-4-5"', '"model":""')  # (same id, same tokens)


def _run(tmp_path, lines: list[str]):
    path = tmp_path / "log.jsonl"
    path.write_text("\n".join(lines) + "\n")
    quarantine = tmp_path / "q.jsonl"
    rep = analyze([str(path)], ["day"], Options(quarantine=str(quarantine)))
    written = quarantine.read_text().splitlines() if quarantine.exists() else []
    return rep.accounting, written


def test_a_copy_without_a_model_does_not_displace_its_valid_twin(tmp_path):
    # (it tied the valid copy on tokens and, written first, won: quarantined, its twin a duplicate)
    acc, _ = _run(tmp_path, [NO_MODEL, COPY])
    assert (acc.priced, acc.duplicates, acc.quarantined) == (1, 0, 1)


def test_the_quarantine_file_holds_as_many_lines_as_rows_quarantined(tmp_path):
    # (the copy without a model lost, was counted a duplicate, and was written there too)
    acc, written = _run(tmp_path, [COPY, NO_MODEL, TORN])
    assert len(written) == acc.quarantined == 2 and acc.duplicates == 0
