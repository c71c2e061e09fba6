"""Invoice readers: the reference examples parse to the amounts and keys they state, labels map
through data, and every format is detected."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import invoices, pricebook
from analyzer.cli import main

from .conftest import canonical_frame, write_frame

# Example invoices (fixtures/invoices/README.md says where their shapes come from; illustrative prices).
REFERENCE = Path(__file__).resolve().parent.parent / "fixtures" / "invoices"
SONNET = "claude-sonnet-4-5-20250929"
DAY = dt.date(2026, 11, 23)


@pytest.fixture(scope="module")
def book():
    return pricebook.load_price_book(())


def reference(name: str) -> str:
    return str(REFERENCE / name)


def test_admin_cost_report_amounts_are_cents(book):
    inv = invoices.read(reference("admin_cost_report.json"), book)
    assert inv.format == "admin-cost-report" and inv.period_unit == "day" and inv.excludes_priority
    lines = inv.lines
    assert lines.height == 9
    assert set(lines["period_start"].to_list()) == {DAY} and set(lines["period_end"].to_list()) == {DAY + dt.timedelta(1)}
    # "375.00" cents is $3.75; the sum of the page's amounts is 2,691.00 cents.
    assert lines["billed"].to_list()[0] == Decimal("3.75")
    assert lines["billed"].sum() == Decimal("26.91")
    assert lines["token_type"].to_list() == ["input", "cache_write_5m", "cache_write_1h", "cache_read", "output",
                                             "input", "output", "web_search", "input"]
    assert lines["service_tier"].to_list()[5:8] == ["batch", "batch", None]
    assert lines["context_tier"].to_list()[-1] == "long" and lines["context_tier"].to_list()[0] == "base"
    assert set(lines["model"].drop_nulls().to_list()) == {SONNET}
    assert lines["line"].to_list()[7] == "data[0].results[7]"
    assert inv.keys == ["model", "token_type", "service_tier", "context_tier", "workspace"]


def test_fractional_cents_are_exact(tmp_path, book):
    doc = {"data": [{"starting_at": "2026-10-01T00:00:00Z", "ending_at": "2026-10-02T00:00:00Z",
                     "results": [{"amount": "123.78912", "currency": "USD"}]}], "has_more": True, "next_page": "p2"}
    path = tmp_path / "page.json"
    path.write_text(json.dumps(doc))
    inv = invoices.read(str(path), book)
    assert inv.lines["billed"].to_list() == [Decimal("1.2378912")]
    assert inv.keys == [] and any("has_more" in n for n in inv.notes)


def test_analytics_cost(book):
    inv = invoices.read(reference("admin_analytics_cost.json"), book)
    assert inv.format == "analytics-cost" and not inv.excludes_priority
    assert inv.lines["billed"].to_list() == [Decimal("2.4"), Decimal("7.125")]
    assert inv.lines["token_type"].to_list() == ["cache_read", "output"]
    assert inv.lines["service_tier"].to_list() == ["standard", "batch"]


def test_console_cost_csv_maps_display_names(book):
    inv = invoices.read(reference("console_cost_export.csv"), book)
    assert inv.format == "console-cost-csv"
    lines = inv.lines
    assert lines["model"].to_list() == [SONNET] * 5 + ["claude-haiku-4-5-20251001"]
    assert lines["model_label"].to_list()[0] == "Claude Sonnet 4.5"
    assert lines["token_type"].to_list() == ["input", "cache_write_5m", "cache_write_1h", "cache_read", "output",
                                             "input"]
    assert set(lines["context_tier"].to_list()) == {"base"}  # "≤ 200k"
    assert set(lines["service_tier"].to_list()) == {"standard"}  # usage_type "message"
    assert lines["billed"].sum() == Decimal("12.80")
    assert lines["line"].to_list()[0] == "line 2"


def test_focus_usage_lines_with_quantities(book):
    inv = invoices.read(reference("focus_sample.csv"), book)
    assert inv.format == "focus"
    lines = inv.lines
    assert lines.height == 8  # the credit line is not usage
    assert any("Credit" in n and "$-5.00" in n for n in inv.notes)
    assert lines["token_type"].to_list() == ["input", "cache_write_5m", "cache_write_1h", "cache_read", "output",
                                             "input", "output", "web_search"]
    assert lines["quantity"].to_list()[3] == Decimal(8_000_000)
    assert lines["service_tier"].to_list()[5:] == ["batch", "batch", None]
    assert lines["billed"].sum() == Decimal("25.05")


def test_focus_parquet(tmp_path, book):
    src = pl.read_csv(reference("focus_sample.csv"), infer_schema=False)
    path = tmp_path / "focus.parquet"
    src.with_columns(pl.col("BilledCost").cast(pl.Float64)).write_parquet(path)
    inv = invoices.read(str(path), book)
    assert inv.format == "focus" and inv.lines["billed"].sum() == Decimal("25.05")


def test_plain_csv_months_and_days(tmp_path, book):
    path = tmp_path / "invoice.csv"
    path.write_text("period,model,token_type,amount_usd\n2026-10,Claude Haiku 4.5,cache read,1.50\n"
                    "2026-11,claude-sonnet-4-5,output,2\n")
    inv = invoices.read(str(path), book)
    assert inv.format == "plain-csv" and inv.period_unit == "month"
    assert inv.lines["period_end"].to_list() == [dt.date(2026, 11, 1), dt.date(2026, 12, 1)]
    assert inv.lines["model"].to_list() == ["claude-haiku-4-5-20251001", SONNET]
    assert inv.lines["token_type"].to_list() == ["cache_read", "output"]
    path.write_text("period,model,amount_usd\n2026-10,x,1\n2026-10-02,x,1\n")
    with pytest.raises(invoices.InvoiceError, match="one UTC day or one calendar month"):
        invoices.read(str(path), book)


def test_unknown_labels_stay_as_written(tmp_path, book):
    path = tmp_path / "invoice.csv"
    path.write_text("period,model,token_type,amount_usd\n2026-10-01,Claude Nova 1,code_execution,1\n")
    inv = invoices.read(str(path), book)
    assert inv.lines["model"].to_list() == ["Claude Nova 1"] and inv.lines["token_type"].to_list() == ["code_execution"]


def test_forced_format_and_wrong_currency(tmp_path, book):
    path = tmp_path / "x.txt"
    path.write_text("period,model,amount_usd\n2026-10-01,x,1\n")
    assert invoices.read(str(path), book, "plain-csv").lines.height == 1
    path.write_text("usage_date_utc,model,token_type,cost_usd\n2026-10-01,x,input,1\n")
    assert invoices.detect(str(path)) == "console-cost-csv"
    doc = {"data": [{"starting_at": "2026-10-01T00:00:00Z", "ending_at": "2026-10-02T00:00:00Z",
                     "results": [{"amount": "1", "currency": "EUR"}]}]}
    path.write_text(json.dumps(doc))
    with pytest.raises(invoices.InvoiceError, match="currency 'EUR'"):
        invoices.read(str(path), book)


# ----------------------------------------------------------------------------------------------
# The reference FOCUS day audited against logs that match it (quantities compared too)


def _focus_logs(tmp_path, cache_read: int = 8_000_000):
    """Sonnet 4.5 usage of 2026-11-23 as the FOCUS sample bills it, in four requests."""
    ts = "2026-11-23T{:02d}:00:00Z"
    rows = [
        {"request_id": "a", "timestamp": ts.format(1), "model": SONNET, "input_tokens": 1_250_000,
         "cache_write_5m_tokens": 400_000, "cache_write_1h_tokens": 100_000, "output_tokens": 300_000,
         "web_search_requests": 120},
        {"request_id": "b", "timestamp": ts.format(2), "model": SONNET, "input_tokens": 0, "output_tokens": 0,
         "cache_read_tokens": cache_read},
        {"request_id": "c", "timestamp": ts.format(3), "model": SONNET, "service_tier": "batch",
         "input_tokens": 2_400_000, "output_tokens": 1_000_000},
    ]
    return write_frame(canonical_frame(rows), tmp_path / "logs.jsonl")


def test_focus_sample_audits_clean_and_compares_quantities(tmp_path):
    q = ["--quarantine", str(tmp_path / "q.jsonl")]
    focus = reference("focus_sample.csv")
    r = CliRunner().invoke(main, ["audit", str(_focus_logs(tmp_path)), "--invoice", focus, "--format", "json", *q])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert Decimal(doc["totals"]["billed"]) == Decimal(doc["totals"]["computed"]) == Decimal("25.05")
    assert any("Credit" in n for n in doc["notes"])
    r = CliRunner().invoke(main, ["audit", str(_focus_logs(tmp_path, cache_read=7_000_000)), "--invoice", focus,
                                  "--format", "json", *q])
    assert r.exit_code == 1
    bad = [ln for ln in json.loads(r.stdout)["lines"] if ln["status"] != "ok"]
    assert [(ln["token_type"], ln["status"], ln["cause"]) for ln in bad] == [
        ("cache_read", "over", "billed 8,000,000 tokens, logs have 7,000,000")]


def test_byte_order_mark_and_quoted_header(tmp_path, book):
    path = tmp_path / "invoice.csv"
    path.write_bytes(b'\xef\xbb\xbf"period","model","amount_usd"\n2026-10,claude-haiku-4-5,1.5\n')
    inv = invoices.read(str(path), book)
    assert inv.format == "plain-csv" and inv.lines["billed"].to_list() == [Decimal("1.5")]


# ----------------------------------------------------------------------------------------------
# Amounts finer than money's 12 decimal places: cast to Decimal(38, 12) they were rounded without a word
# (`3.0000000000004` billed as $3.00, `1.5e-12` as $0.000000000002) and the audit compared a number the
# invoice does not say. Refused, naming the line; trailing zeros and exponents that stay within 12 places
# are exact and read.

def _plain_logs(tmp_path):
    logs = tmp_path / "logs.csv"  # 1M input tokens of Sonnet 4.5: $3.00
    logs.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                    "r1,2026-10-01T09:00:00Z,claude-sonnet-4-5,1000000,0\n")
    return logs


def _audit(tmp_path, invoice, *args):
    return CliRunner().invoke(main, ["audit", str(_plain_logs(tmp_path)), "--invoice", str(invoice), "--quarantine",
                                     str(tmp_path / "q.jsonl"), *args])


@pytest.mark.parametrize("amount", ["3.0000000000004", "3.00000000000049999", "1.5e-12", "-0.0000000000001",
                                    "3000000000000e-12000"])
def test_an_amount_finer_than_twelve_places_is_refused_not_rounded(tmp_path, amount):
    invoice = tmp_path / "invoice.csv"
    invoice.write_text(f"period,model,amount_usd\n2026-10-01,claude-sonnet-4-5,{amount}\n")
    r = _audit(tmp_path, invoice)
    assert r.exit_code == 2, r.output
    assert r.output == (f"llm-cost: error: {invoice}, line 2: amount {amount!r} has more than 12 decimal places; "
                        "llm-cost keeps money exact to 12 places of a dollar and does not round an invoice\n")


@pytest.mark.parametrize("amount", ["3.000000000000000000", "3.000000000001", "3000000000000e-12", "0.0e-20"])
def test_an_amount_within_twelve_places_is_read_exactly(tmp_path, amount):
    invoice = tmp_path / "invoice.csv"
    invoice.write_text(f"period,model,amount_usd\n2026-10-01,claude-sonnet-4-5,{amount}\n")
    r = _audit(tmp_path, invoice, "--format", "json", "--tolerance", "1000")
    assert r.exit_code == 0, r.output
    assert Decimal(json.loads(r.stdout)["lines"][0]["billed"]) == Decimal(amount)


def test_cents_are_refused_beyond_ten_places_and_exact_within(tmp_path):
    """Admin API amounts are cents: 10 places of a cent are 12 of a dollar."""
    def page(amount):
        path = tmp_path / "cost_report.json"
        path.write_text(json.dumps({"data": [{"starting_at": "2026-10-01T00:00:00Z", "ending_at": "2026-10-02T00:00:00Z",
                                              "results": [{"amount": amount, "currency": "USD"}]}]}))
        return path

    r = _audit(tmp_path, page("300.0000000001"), "--format", "json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout)["lines"][0]["billed"] == "3.000000000001"
    invoice = page("300.00000000001")
    r = _audit(tmp_path, invoice)
    assert r.exit_code == 2, r.output
    assert r.output == (f"llm-cost: error: {invoice}, data[0].results[0]: amount '300.00000000001' (cents) has more "
                        "than 10 decimal places; llm-cost keeps money exact to 12 places of a dollar and does not "
                        "round an invoice\n")


def test_a_focus_credit_or_a_quantity_finer_than_twelve_places_is_refused(tmp_path):
    lines = Path(reference("focus_sample.csv")).read_text().splitlines(keepends=True)
    credit = tmp_path / "credit.csv"
    credit.write_text("".join(lines[:-1]) + lines[-1].replace("-5.0,", "-5.0000000000001,", 1))
    r = _audit(tmp_path, credit)
    assert r.exit_code == 2, r.output
    assert r.output.startswith(f"llm-cost: error: {credit}, line {len(lines)}: amount '-5.0000000000001' has more "
                               "than 12 decimal places")
    invoice = tmp_path / "invoice.csv"
    invoice.write_text("period,model,token_type,amount_usd,quantity\n"
                       "2026-10-01,claude-sonnet-4-5,input,3.00,1000000.0000000000001\n")
    r = _audit(tmp_path, invoice)
    assert r.exit_code == 2, r.output
    assert r.output == (f"llm-cost: error: {invoice}, line 2: quantity '1000000.0000000000001' has more than 12 "
                        "decimal places; llm-cost does not round an invoice\n")
