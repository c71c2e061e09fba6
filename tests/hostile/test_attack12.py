"""Attacks on this session's Parquet check (sources.check_parquet: PyArrow decodes every page before
Polars reads the file; columns of bytes read as text) and on two refusals: `--format focus` with
report-shaping options, and invoice amounts finer than 12 decimal places (invoices._places).

Tried, and what held (guarded below where cheap):
- Cutting a 6-row-group Parquet log at every 7th byte (3,760 cuts): always one line, exit 2.
- 25,000 copies with 1-3 footer or page bytes overwritten (before the fix: ~0.2% panicked, all on a
  footer count; after: none), read by report, price and Polars directly; those that read give
  balanced accounting (a changed value in a page with no checksum is a changed log: not detectable).
- Columns of odd types: decimal (a 0.5 token quarantined), decimal256 and Polars' Int128 (one line;
  the latter says "damaged", noted), dictionary, categorical, enum, large_string, string_view,
  large_binary, time, duration, null type, date and timestamps as the time, float, uint64, int8,
  float16, bool; struct, list and map columns beside the log's; bytes as model, request_id and a
  `--by` dimension: report == the CSV's. Such files ingested into a store, `report --store` (and its
  FOCUS export) and `--engine spark` (report, price) give the same totals as the Polars engine.
- Zero-length, only the magic, a Parquet file named .csv (one line); with no name or from stdin
  (sniffed: read); in a tree and by a glob (read or refused as the same file alone).
- `--format focus` refusals: --by/--sort/--top/--columns/--precision typed with any value (0, "")
  are refused; their defaults are not. The CLI has no config file, default map or environment
  variables, so nothing sets an option without its being typed. --billing-account is refused by
  every other output of report and price; `--billing-account ""` with focus falls back to the
  platform (noted).
- Invoice amounts: 1e-13, 0.1000000000000, -0, +1.5, ' 1.5 ', 0E-30, 10e-13 read or refused as
  their value says; 1_000, NaN, Infinity, 1e400, 1,000.50, $1.50, (1.50) are "not a decimal number".

Defects found (each a test below): Polars panicked on a footer whose row or value counts disagree
with the pages (PyArrow decodes the pages and says nothing), on bytes inside a struct, list or map
and on FIXED_LEN_BYTE_ARRAY bytes (the check looked at top-level BINARY only); page checksums were
not verified, so a page with a flipped byte in a file that has them was priced; gzip/zstd Parquet was
"damaged Parquet" (or a CSV reader's error) though whole; an invoice amount with an exponent of more
than 6 digits (`1e-0000013`) was read by Polars but not by the places check, and rounded without a
word; a Parquet map or duration column failed `price` and `--format focus` (and where a time or cost
is read, every command), as a FOCUS Parquet invoice's map Tags failed `audit`, naming no file; Polars'
Int128 was "damaged"; --columns/--precision were ignored with every format but table and Markdown, and
an empty --billing-account replaced or written blank. A file replaced between the check and the read
was read unchecked (Polars now reads the file the check read, open since). A Parquet log of a nested
(JSON) dialect, which failed with a Polars error naming no file, is now refused naming it
(mapped._nested_where_text)."""

from __future__ import annotations

import json
import os
import re
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from analyzer import sources
from analyzer.cli import main

ROOT = Path(__file__).resolve().parents[2]
DAMAGED = ROOT / "fixtures" / "damaged-parquet"
OCTOBER = ROOT / "fixtures" / "sample" / "october.csv"
SONNET = "claude-sonnet-4-5-20250929"


def _report(tmp_path: Path, *args: str):
    return CliRunner().invoke(main, ["report", *args, "--quarantine", str(tmp_path / "q.jsonl")])


def _json_report(tmp_path: Path, path: Path, *args: str) -> dict:
    r = _report(tmp_path, str(path), "--format", "json", "-q", *args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def _two_requests(**columns) -> pa.Table:
    """Two Sonnet 4.5 requests: 1,000 + 2,000 input and 100 + 0 output tokens ($0.0105), with `columns` added."""
    table = pa.table({"request_id": ["r1", "r2"], "timestamp": ["2026-11-01T00:00:00Z"] * 2,
                      "model": ["claude-sonnet-4-5"] * 2, "input_tokens": [1000, 2000], "output_tokens": [100, 0]})
    for name, array in columns.items():
        table = table.set_column(table.column_names.index(name), name, array) if name in table.column_names \
            else table.append_column(name, array)
    return table


def _cost(rep: dict) -> tuple[str, Decimal, int, bool]:
    acc = rep["accounting"]
    return rep["rows"][0]["model"], Decimal(rep["totals"]["cost"]), acc["priced"], acc["balanced"]


# --- a footer whose counts disagree with the pages --------------------------------------------------

# sample/october.csv as Parquet (Polars, all text, two row groups of 8 and 8 rows), one footer count
# changed: PyArrow decodes every page and says nothing; Polars' streaming reader panicked (a Rust
# assertion: a traceback and a backtrace, exit 1). The check counts each column's rows against them.
FOOTERS = {
    "sample-footer-file-rows.parquet": "its footer counts 31 rows, its row groups 16",
    "sample-footer-group-rows.parquet": "its footer counts 16 rows, its row groups 68",
    "sample-footer-chunk-values.parquet": "column 'api_key' holds 0 rows of row group 2, whose footer counts 8",
}


@pytest.mark.parametrize("command", ["report", "price"])
@pytest.mark.parametrize("name", sorted(FOOTERS))
def test_a_footer_count_the_pages_disagree_with_is_one_line(tmp_path, name, command):
    path = DAMAGED / name
    extra = ["-o", str(tmp_path / "rows.csv")] if command == "price" else []
    r = CliRunner().invoke(main, [command, str(path), "--quarantine", str(tmp_path / "q.jsonl"), *extra])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {path}: cannot read (damaged Parquet: {FOOTERS[name]})\n"
    assert not (tmp_path / "rows.csv").exists()


def test_the_same_file_with_its_footer_whole_reads_as_its_csv(tmp_path):
    """What the damaged copies came from: two row groups, every value text; the CSV's report."""
    path = tmp_path / "october.parquet"
    pl.read_csv(OCTOBER, infer_schema=False).write_parquet(path, row_group_size=8)
    assert pq.ParquetFile(path).metadata.num_row_groups == 2
    from_parquet, from_csv = _json_report(tmp_path, path), _json_report(tmp_path, OCTOBER)
    assert from_parquet["rows"] == from_csv["rows"] and from_parquet["totals"] == from_csv["totals"]
    assert from_parquet["totals"]["cost"] == "1.128580025000"


# --- bytes below the top level ----------------------------------------------------------------------

_NESTED = {
    "struct": (pa.array([{"a": b"x", "b": b"y"}] * 3, pa.struct([("a", pa.binary()), ("b", pa.binary())])),
               pa.array([{"a": b"x", "b": b"\xff"}] * 2, pa.struct([("a", pa.binary()), ("b", pa.binary())]))),
    "list": (pa.array([[b"x"], [b"y", None], []], pa.list_(pa.binary())),
             pa.array([[b"x"], [b"\xfe"]], pa.list_(pa.binary()))),
    "map": (pa.array([[("k", b"v")], [], None], pa.map_(pa.string(), pa.binary())),
            pa.array([[("k", b"\xfe")], []], pa.map_(pa.string(), pa.binary()))),
    "fixed": (pa.array([b"ab", b"cd", b"ef"], pa.binary(2)), pa.array([b"ab", b"\xff\xfe"], pa.binary(2))),
}


@pytest.mark.parametrize("kind", sorted(_NESTED))
def test_bytes_in_a_struct_list_map_or_fixed_size_column_are_read_as_text(tmp_path, kind):
    """The check cast top-level BINARY only: bytes a level down, or FIXED_LEN_BYTE_ARRAY, reached
    Polars' JSON writer of a quarantined record's text, which panicked ("Writing BinaryView to JSON")."""
    path = tmp_path / "nested.parquet"
    bad = pa.table({"request_id": ["r3"], "timestamp": ["2026-11-01T00:00:00Z"], "model": ["claude-sonnet-4-5"],
                    "input_tokens": [-40], "output_tokens": [0]})  # (quarantined: its text is written)
    table = pa.concat_tables([_two_requests().slice(0, 2), bad]).append_column("extra", _NESTED[kind][0])
    pq.write_table(table, path)
    rep = _json_report(tmp_path, path)
    # Sonnet 4.5, $3 in / $15 out per MTok: 3,000 x 3 + 100 x 15 = 10,500 / 1e6
    assert _cost(rep) == (SONNET, Decimal("0.0105"), 2, True) and rep["accounting"]["quarantined"] == 1
    written = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    assert [w["line"] for w in written] == [3]


@pytest.mark.parametrize("kind", sorted(_NESTED))
def test_bytes_that_are_not_text_below_the_top_level_are_refused_naming_the_column(tmp_path, kind):
    path = tmp_path / "nested.parquet"
    pq.write_table(_two_requests(extra=_NESTED[kind][1]), path)
    r = _report(tmp_path, str(path))
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {path}: cannot read (column 'extra' holds bytes that are not UTF-8 text)\n"


def test_a_fixed_size_request_id_of_bytes_is_the_request_id(tmp_path):
    """As dedupe's key: the two copies of r1 are one request."""
    path = tmp_path / "fixed.parquet"
    table = pa.concat_tables([_two_requests(request_id=pa.array([b"r1", b"r2"], pa.binary(2)))] * 2)
    pq.write_table(table, path)
    rep = _json_report(tmp_path, path)
    assert _cost(rep) == (SONNET, Decimal("0.0105"), 2, True) and rep["accounting"]["duplicates"] == 2


def test_a_whole_file_pyarrow_cannot_decode_is_not_called_damaged(tmp_path):
    """Polars writes an Int128 column as 16-byte integers, which PyArrow does not decode: the file is
    refused (the check cannot vouch for it), but it was called "damaged Parquet", which it is not."""
    path = tmp_path / "int128.parquet"
    pl.from_arrow(_two_requests()).with_columns(pl.col("input_tokens").cast(pl.Int128)).write_parquet(path)
    r = _report(tmp_path, str(path))
    assert (r.exit_code, r.output) == (2, f"llm-cost: error: {path}: cannot read (Parquet that PyArrow cannot decode, "
                                          "damaged or of a type it does not read: Integers with more than 64 bits "
                                          "not implemented)\n")


# --- page checksums ------------------------------------------------------------------------------------

def test_a_page_whose_checksum_fails_is_refused_not_priced(tmp_path):
    """parquet-mr (Spark) and PyArrow can store a CRC of each page; neither Polars nor the check
    verified it, so a flipped bit in a page was priced: 2,000 input tokens read as 1,744."""
    path = tmp_path / "crc.parquet"
    pq.write_table(_two_requests(), path, compression="none", use_dictionary=False, write_statistics=False,
                   write_page_checksum=True)
    data = bytearray(path.read_bytes())
    at = data.index((2000).to_bytes(8, "little"))  # (no statistics: the page's value is the only copy)
    data[at + 1] ^= 0x01
    path.write_bytes(bytes(data))
    assert pl.read_parquet(path)["input_tokens"].to_list() == [1000, 1744]  # what Polars reads, unchecked
    r = _report(tmp_path, str(path))
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"llm-cost: error: {path}: cannot read (damaged Parquet: could not verify page "
                               "integrity, CRC checksum verification failed")


# --- Parquet inside gzip or zstd ---------------------------------------------------------------------

@pytest.mark.parametrize("name", ["log.parquet.gz", "log.parquet.zst", "log"])
def test_parquet_inside_gzip_or_zstd_is_refused_in_words_not_called_damaged(tmp_path, name):
    """docs/reports.md: "any of them .gz or .zst". Parquet cannot be read from a stream (its footer is
    at the end): `x.parquet.gz` was "damaged Parquet: magic bytes not found", `.zst` a CSV reader's
    error, of files that are whole."""
    plain = tmp_path / "plain.parquet"
    pq.write_table(_two_requests(), plain)
    path = tmp_path / name
    if name.endswith(".zst"):
        import zstandard

        path.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    else:
        import gzip

        path.write_bytes(gzip.compress(plain.read_bytes()))
    r = _report(tmp_path, str(path))
    assert r.exit_code == 2, r.output
    codec = "zstd" if name.endswith(".zst") else "gzip"
    assert r.output == (f"llm-cost: error: {path}: cannot read (Parquet compressed with {codec}: Parquet compresses "
                        "its own pages; decompress the file to read it)\n")


def test_parquet_from_stdin_or_without_a_name_is_read(tmp_path):
    plain = tmp_path / "log"
    pq.write_table(_two_requests(), plain)
    assert _cost(_json_report(tmp_path, plain)) == (SONNET, Decimal("0.0105"), 2, True)
    r = CliRunner().invoke(main, ["report", "-", "--format", "json", "-q", "--quarantine", str(tmp_path / "q.jsonl")],
                           input=plain.read_bytes())
    assert r.exit_code == 0, r.output
    assert _cost(json.loads(r.stdout)) == (SONNET, Decimal("0.0105"), 2, True)


# --- a file replaced between the check and the read ---------------------------------------------------

@pytest.mark.parametrize("log", ["clean", "with quarantined records"])
def test_a_parquet_file_replaced_after_its_check_is_not_read_unchecked(tmp_path, monkeypatch, log):
    """Was: checked at its path, then read by Polars at the path again: a damaged file put there in
    between was read unchecked (a panic: PanicException, a Rust backtrace, exit 1). Polars now reads
    the file the check read, open since: a clean log's run reports the file it checked. A log with
    quarantined records is read again by the quarantine pass, which finds it changed (fingerprint.py)
    and stops in one line, as for any log changed during a run."""
    path = tmp_path / "log.parquet"
    if log == "clean":
        pq.write_table(_two_requests(), path)
    else:
        pl.read_csv(OCTOBER, infer_schema=False).write_parquet(path, row_group_size=8)
    checked = sources.check_parquet
    replaced = []

    def then_replaced(p):
        found = checked(p)
        shutil.copy(DAMAGED / "sample-footer-chunk-values.parquet", tmp_path / "new")
        os.replace(tmp_path / "new", p)
        replaced.append(p)
        return found

    monkeypatch.setattr(sources, "check_parquet", then_replaced)
    try:
        r = _report(tmp_path, str(path), "--format", "json", "-q")
        outcome = (r.exit_code, type(r.exception).__name__)
    except BaseException as e:  # noqa: BLE001 - pyo3's PanicException is a BaseException
        outcome = (1, type(e).__name__)
    assert set(replaced) == {str(path)}
    if log == "clean":
        assert outcome == (0, "NoneType"), r.output
        assert _cost(json.loads(r.stdout)) == (SONNET, Decimal("0.0105"), 2, True)
    else:
        assert outcome == (2, "SystemExit")
        assert r.output == (f"llm-cost: error: {path}: changed during the run (replaced by another file); its "
                            "records were counted as it was before, and cannot be read again: run again\n")
    assert (DAMAGED / "sample-footer-chunk-values.parquet").read_bytes() == path.read_bytes()


# --- a Parquet log of a nested (JSON) dialect ------------------------------------------------------

def test_a_parquet_log_of_a_json_dialect_is_read_or_refused_naming_the_file(tmp_path):
    path = tmp_path / "responses.parquet"
    pl.read_ndjson(ROOT / "fixtures" / "dialects" / "anthropic-messages" / "responses.jsonl",
                   infer_schema_length=None).write_parquet(path)
    r = _report(tmp_path, str(path), "-q")
    # (refused: the format reads `usage.iterations` as JSON text; Polars wrote it a list of structs)
    assert r.exit_code == 2 and "Traceback" not in r.output
    assert r.output == (f"llm-cost: error: {path}: a Parquet file whose usage.iterations is a nested value (a list) "
                        "of another shape than this format reads; a JSON format's records are read as JSON: give "
                        "them as JSON Lines\n")


# --- invoice amounts: exponents of any length -----------------------------------------------------

@pytest.mark.parametrize("amount", ["30000000000004e-0000013", "3e-1000000", "1e-00000000000000000000000013"])
def test_an_exponent_of_more_than_six_digits_is_not_a_way_round_the_places_check(tmp_path, amount):
    """The places check read an exponent of at most 6 digits; Polars reads any: `30000000000004e-0000013`
    (3.0000000000004) was billed as $3.00 and matched the logs' $3.00, `3e-1000000` as $0."""
    logs = tmp_path / "logs.csv"  # 1M input tokens of Sonnet 4.5: $3.00
    logs.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                    "r1,2026-10-01T09:00:00Z,claude-sonnet-4-5,1000000,0\n")
    invoice = tmp_path / "invoice.csv"
    invoice.write_text(f"period,model,amount_usd\n2026-10-01,claude-sonnet-4-5,{amount}\n")
    r = CliRunner().invoke(main, ["audit", str(logs), "--invoice", str(invoice), "--quarantine", str(tmp_path / "q")])
    assert r.exit_code == 2, r.output
    assert r.output == (f"llm-cost: error: {invoice}, line 2: amount {amount!r} has more than 12 decimal places; "
                        "llm-cost keeps money exact to 12 places of a dollar and does not round an invoice\n")


def test_an_exponent_with_leading_zeros_within_twelve_places_is_read_exactly(tmp_path):
    logs = tmp_path / "logs.csv"
    logs.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                    "r1,2026-10-01T09:00:00Z,claude-sonnet-4-5,1000000,0\n")
    invoice = tmp_path / "invoice.csv"
    invoice.write_text("period,model,amount_usd\n2026-10-01,claude-sonnet-4-5,3000000000001e-0000012\n")
    r = CliRunner().invoke(main, ["audit", str(logs), "--invoice", str(invoice), "--quarantine", str(tmp_path / "q"),
                                  "--format", "json", "--tolerance", "1000"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lines"][0]["billed"] == "3.000000000001"


# --- a map or duration column ------------------------------------------------------------------------

_ODD = {"map": (pa.array([[("k", "v")], None], pa.map_(pa.string(), pa.string())), ['{"k":"v"}', "null"]),
        "duration": (pa.array([1500, None], pa.duration("ms")), ["PT1.5S", ""])}


@pytest.mark.parametrize("kind", sorted(_ODD))
def test_a_map_or_duration_column_beside_the_log_is_a_dimension_in_every_output(tmp_path, kind):
    """`report` read it (the column was not used), but `price` and `--format focus`, which write every
    dimension, failed the run: "cannot read input: cannot cast `map[str, str]` to `str`" (Polars casts
    no map or duration to text), naming no file. A map is its JSON text, as a struct is; a duration ISO."""
    path = tmp_path / "log.parquet"
    pq.write_table(_two_requests(extra=_ODD[kind][0]), path)
    r = CliRunner().invoke(main, ["price", str(path), "-o", str(tmp_path / "rows.csv"), "-q",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    rows = pl.read_csv(tmp_path / "rows.csv", infer_schema=False)
    # Sonnet 4.5, $3 in / $15 out per MTok: r1 1,000 x 3 + 100 x 15 = $0.0045, r2 2,000 x 3 = $0.006
    assert rows.select("extra", "cost").rows() == [(_ODD[kind][1][0], "0.004500000000"),
                                                   (_ODD[kind][1][1] or None, "0.006000000000")]
    r = CliRunner().invoke(main, ["report", str(path), "--format", "focus", "-o", str(tmp_path / "focus.csv"), "-q",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    focus = pl.read_csv(tmp_path / "focus.csv", infer_schema=False)
    assert sum(Decimal(x) for x in focus["BilledCost"]) == Decimal("0.0105")


@pytest.mark.parametrize("field", ["timestamp", "reported_cost"])
@pytest.mark.parametrize("kind", sorted(_ODD))
def test_a_map_or_duration_where_a_time_or_cost_is_read_quarantines_the_rows(tmp_path, kind, field):
    """As a struct does ("has unsupported type"): it failed the run (the cast to text of the time a
    quarantine reason quotes, or of a cost)."""
    path = tmp_path / "log.parquet"
    pq.write_table(_two_requests(**{field: _ODD[kind][0]}), path)
    rep = _json_report(tmp_path, path)
    acc = rep["accounting"]
    assert (acc["priced"], acc["quarantined"], acc["balanced"], rep["totals"]["cost"]) == (0, 2, True, "0.000000000000")
    written = [json.loads(line) for line in (tmp_path / "q.jsonl").read_text().splitlines()]
    shown = {"map": "Map(String, String)", "duration": "Duration(time_unit='ms')"}[kind]
    assert [(w["line"], w["reason"]) for w in written] == [(n, f"{field} has unsupported type {shown}") for n in (1, 2)]


# --- a FOCUS invoice in Parquet -------------------------------------------------------------------------

def _focus_invoice(tmp_path: Path) -> pa.Table:
    """llm-cost's own FOCUS export of the sample logs ($1.12858002500 billed), as a table to change."""
    out = tmp_path / "focus.parquet"
    r = CliRunner().invoke(main, ["report", str(OCTOBER), "--format", "focus", "-o", str(out), "-q",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    return pq.read_table(out)


def _audit_totals(tmp_path: Path, invoice: Path):
    r = CliRunner().invoke(main, ["audit", str(OCTOBER), "--invoice", str(invoice), "--format", "json", "-q",
                                  "--quarantine", str(tmp_path / "q.jsonl")])
    return r.exit_code, (json.loads(r.stdout)["totals"] if r.exit_code == 0 else r.output)


def test_a_focus_parquet_invoice_with_tags_as_a_map_is_audited(tmp_path):
    """FOCUS exports in Parquet (AWS Data Exports') hold Tags as a map<string, string>: the invoice
    reader cast every column to text, and the audit failed with "cannot read input: cannot cast
    `map[str, str]` to `str`", naming no file."""
    table = _focus_invoice(tmp_path)
    tags = pa.array([[("team", "research")]] * table.num_rows, pa.map_(pa.string(), pa.string()))
    invoice = tmp_path / "invoice.parquet"
    pq.write_table(table.set_column(table.column_names.index("Tags"), "Tags", tags), invoice)
    assert _audit_totals(tmp_path, invoice) == (0, {"billed": "1.128580025000", "computed": "1.128580025000",
                                                    "difference": "0.000000000000"})


def test_a_gzipped_parquet_invoice_or_log_named_parquet_is_refused_in_words(tmp_path):
    import gzip

    table = _focus_invoice(tmp_path)
    invoice = tmp_path / "invoice.parquet"
    pq.write_table(table, tmp_path / "plain.parquet")
    invoice.write_bytes(gzip.compress((tmp_path / "plain.parquet").read_bytes()))
    said = "cannot read (Parquet compressed with gzip: Parquet compresses its own pages; decompress the file to read it)"
    assert _audit_totals(tmp_path, invoice) == (2, f"llm-cost: error: {invoice}: {said}\n")
    log = tmp_path / "log.parquet"
    pq.write_table(_two_requests(), tmp_path / "plain-log.parquet")
    log.write_bytes(gzip.compress((tmp_path / "plain-log.parquet").read_bytes()))
    r = _report(tmp_path, str(log))
    assert (r.exit_code, r.output) == (2, f"llm-cost: error: {log}: {said}\n")


# --- --columns and --precision where they do nothing -------------------------------------------------

@pytest.mark.parametrize(("args", "shown"), [
    (["--format", "csv", "--columns", "cost"], "--columns: shape the table and Markdown only, not csv output "
                                                "(written whole); leave it out"),
    (["-o", "{tmp}/r.json", "--precision", "4"], "--precision: shape the table and Markdown only, not json output "
                                                  "(written whole); leave it out"),
    (["--format", "html", "-o", "{tmp}/r.html", "--columns", "cost", "--precision", "0"],
     "--columns, --precision: shape the table and Markdown only, not html output (written whole); leave them out"),
])
def test_columns_and_precision_are_refused_where_they_would_be_ignored(tmp_path, args, shown):
    """focus2 refused them with --format focus because they were accepted and ignored; with CSV,
    JSON, JSONL, Parquet and HTML they still were (the file identical to one without them, exit 0)."""
    r = _report(tmp_path, str(OCTOBER), *[a.replace("{tmp}", str(tmp_path)) for a in args])
    assert (r.exit_code, r.output) == (2, f"llm-cost: error: {shown}\n")
    assert not list(tmp_path.glob("r.*"))


def test_columns_and_precision_still_shape_markdown(tmp_path):
    r = _report(tmp_path, str(OCTOBER), "--format", "markdown", "--columns", "cost", "--precision", "4", "-q")
    assert r.exit_code == 0, r.output
    table = [line for line in r.stdout.splitlines() if line.startswith("|")]
    assert table[:2] == ["| model | cost $ |", "|---|---:|"] and len(table) > 3
    assert re.fullmatch(r"\| claude-[^|]+ \| \d+\.\d{4} \|", table[2]), table


@pytest.mark.parametrize("command", ["report", "price"])
@pytest.mark.parametrize("account", ["", "  "])
def test_an_empty_billing_account_is_refused_not_blank_or_replaced(tmp_path, command, account):
    """`--billing-account ""` was the platform's name without a word; `"  "` a blank BillingAccountId,
    which FOCUS requires to name the account."""
    out = tmp_path / "focus.csv"
    r = CliRunner().invoke(main, [command, str(OCTOBER), "--format", "focus", "-o", str(out), "--billing-account",
                                  account, "--quarantine", str(tmp_path / "q.jsonl")])
    assert (r.exit_code, r.output) == (2, f"llm-cost: error: --billing-account {account!r}: empty; FOCUS's "
                                          "BillingAccountId names the account (leave the option out for the "
                                          "platform's name)\n")
    assert not out.exists()
