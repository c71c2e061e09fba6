"""FOCUS 1.2 export: the spec's columns and types, exact costs that add up to the report, the
spec's row identities, list vs contracted prices, audit of its own export, hostile values."""

from __future__ import annotations

import csv
import io
import json
import re
from decimal import Decimal as D

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer import focus, pipeline
from analyzer.cli import main

# FOCUS 1.2 Mandatory columns and their data types, from specification/columns/*.md at tag v1.2
# (FinOps-Open-Cost-and-Usage-Spec/FOCUS_Spec, commit 7296e3146fb931ee32b6496fa6e4200e7f4384f7):
# spelled out here, apart from analyzer/focus.toml, so that a mistake in the data file shows.
MANDATORY = {
    "BilledCost": "Decimal", "BillingAccountId": "String", "BillingAccountName": "String",
    "BillingCurrency": "String", "BillingPeriodEnd": "DateTime", "BillingPeriodStart": "DateTime",
    "ChargeCategory": "String", "ChargeClass": "String", "ChargeDescription": "String",
    "ChargePeriodEnd": "DateTime", "ChargePeriodStart": "DateTime", "ContractedCost": "Decimal",
    "EffectiveCost": "Decimal", "InvoiceIssuerName": "String", "ListCost": "Decimal",
    "PricingQuantity": "Decimal", "PricingUnit": "String", "ProviderName": "String", "PublisherName": "String",
    "ServiceCategory": "String", "ServiceName": "String",
}
NOT_NULL = ["BilledCost", "BillingAccountId", "BillingCurrency", "BillingPeriodEnd", "BillingPeriodStart",
            "ChargeCategory", "ChargePeriodEnd", "ChargePeriodStart", "ContractedCost", "EffectiveCost",
            "InvoiceIssuerName", "ListCost", "ProviderName", "PublisherName", "ServiceCategory", "ServiceName",
            # Conditional columns that must not be null on a Usage row that is not a correction:
            "PricingQuantity", "PricingUnit", "ListUnitPrice", "ContractedUnitPrice", "SkuId", "SkuPriceId",
            "ConsumedQuantity", "ConsumedUnit", "PricingCategory"]
CONDITIONAL = ["SkuId", "SkuPriceId", "SkuPriceDetails", "SkuMeter", "ListUnitPrice", "ContractedUnitPrice",
               "ConsumedQuantity", "ConsumedUnit", "RegionId", "RegionName", "Tags", "SubAccountId", "SubAccountName"]
POLARS = {"Decimal": pl.Decimal, "String": pl.String, "DateTime": pl.Datetime}

# claude-sonnet-4-5: input 3, cache read 0.30, output 15 USD/MTok; batch x0.5. claude-haiku-4-5:
# output 5. Web search $10 per 1,000.
LOG = """request_id,timestamp,model,workspace,service_tier,input_tokens,cache_read_tokens,output_tokens,web_search_requests
r1,2026-10-01T10:00:00Z,claude-sonnet-4-5,a,standard,100000,50000,10000,0
r2,2026-10-01T12:00:00Z,claude-sonnet-4-5,a,batch,100000,0,0,0
r3,2026-10-02T08:00:00Z,claude-haiku-4-5,b,standard,0,0,20000,2
"""
# r1: 0.30 + 0.015 + 0.15; r2: 0.15; r3: 0.10 + 0.02
TOTAL = D("0.30") + D("0.015") + D("0.15") + D("0.15") + D("0.10") + D("0.02")


@pytest.fixture
def log(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text(LOG)
    return str(p)


def export(paths, tmp_path, **kw):
    return focus.export(paths, pipeline.Options(quarantine=str(tmp_path / "q.jsonl"), **kw))


def test_mandatory_columns_present_with_their_types(log, tmp_path):
    rows = export([log], tmp_path).rows
    for name, kind in MANDATORY.items():
        assert isinstance(rows.schema[name], POLARS[kind]), name
    assert rows.schema["ChargePeriodStart"].time_zone == "UTC"
    for name in CONDITIONAL:
        assert name in rows.columns
    assert all(c in MANDATORY or c in CONDITIONAL or c.startswith("x_") or c in
               ("ChargeFrequency", "PricingCategory", "ServiceSubcategory") for c in rows.columns)
    assert rows.select(pl.col(NOT_NULL).null_count().sum()).sum_horizontal().item() == 0
    spec = focus.spec()
    assert {c["name"] for c in spec["column"] if c["level"] == "Mandatory"} == set(MANDATORY)


def test_rows_hand_computed_and_summing_to_the_report(log, tmp_path):
    rows = export([log], tmp_path).rows
    got = {(r["ChargePeriodStart"].date().isoformat(), r["SkuPriceId"]): r["BilledCost"] for r in rows.to_dicts()}
    assert got == {
        ("2026-10-01", "claude-sonnet-4-5-20250929:input:standard"): D("0.3"),
        ("2026-10-01", "claude-sonnet-4-5-20250929:input:batch"): D("0.15"),
        ("2026-10-01", "claude-sonnet-4-5-20250929:cache_read:standard"): D("0.015"),
        ("2026-10-01", "claude-sonnet-4-5-20250929:output:standard"): D("0.15"),
        ("2026-10-02", "claude-haiku-4-5-20251001:output:standard"): D("0.1"),
        ("2026-10-02", "claude-haiku-4-5-20251001:web_search:standard"): D("0.02"),
    }
    assert rows["BilledCost"].sum() == TOTAL
    report = pipeline.analyze([log], ["model"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    assert report.totals["cost"] == TOTAL
    web = rows.filter(pl.col("x_TokenClass") == "web_search").row(0, named=True)
    assert (web["PricingUnit"], web["PricingQuantity"], web["ListUnitPrice"], web["ConsumedQuantity"],
            web["ConsumedUnit"]) == ("1000 Requests", D("0.002"), D("10"), 2, "Requests")
    batch = rows.filter(pl.col("SkuPriceId").str.ends_with(":batch")).row(0, named=True)
    assert (batch["PricingUnit"], batch["PricingQuantity"], batch["ContractedUnitPrice"]) == (
        "1000000 Tokens", D("0.1"), D("1.5"))
    assert json.loads(batch["SkuPriceDetails"])["x_ServiceTier"] == "batch"
    assert batch["BillingPeriodStart"].isoformat() == "2026-10-01T00:00:00+00:00"
    assert batch["BillingPeriodEnd"].isoformat() == "2026-11-01T00:00:00+00:00"
    assert batch["ChargePeriodEnd"].isoformat() == "2026-10-02T00:00:00+00:00"
    assert (batch["ProviderName"], batch["PublisherName"], batch["ServiceName"], batch["ServiceCategory"],
            batch["ChargeCategory"], batch["ChargeClass"]) == (
        "Anthropic", "Anthropic", "Claude API", "AI and Machine Learning", "Usage", None)
    assert json.loads(batch["Tags"]) == {"workspace": "a"} and batch["SubAccountName"] == "a"


def test_row_identities_of_the_spec_hold_exactly(tmp_path):
    """ListCost = ListUnitPrice x PricingQuantity, ContractedCost = ContractedUnitPrice x PricingQuantity
    (checked in Python Decimal), on the sample logs (batch, long context, priority, cache, web search)."""
    rows = export(["fixtures/sample"], tmp_path).rows
    for r in rows.to_dicts():
        assert r["ListUnitPrice"] * r["PricingQuantity"] == r["ListCost"], r["SkuPriceId"]
        assert r["ContractedUnitPrice"] * r["PricingQuantity"] == r["ContractedCost"] == r["BilledCost"] \
            == r["EffectiveCost"], r["SkuPriceId"]
    report = pipeline.analyze(["fixtures/sample"], ["model"], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")))
    assert rows["BilledCost"].sum() == report.totals["cost"]


def test_list_price_is_the_published_one_under_an_overlay(tmp_path):
    """fixtures/prices/negotiated.toml: 15% off from 2026-10-01 and Sonnet 4.5 at 2.4/12 from 2026-11-01."""
    p = tmp_path / "log.csv"
    p.write_text("timestamp,model,input_tokens,output_tokens\n2026-11-05T10:00:00Z,claude-sonnet-4-5,1000000,0\n"
                 "2026-10-05T10:00:00Z,claude-sonnet-4-5,1000000,0\n")
    rows = export([str(p)], tmp_path, prices=("fixtures/prices/negotiated.toml",)).rows
    nov = rows.filter(pl.col("ChargePeriodStart").dt.month() == 11).row(0, named=True)
    assert (nov["ListUnitPrice"], nov["ContractedUnitPrice"], nov["ListCost"], nov["BilledCost"]) == (
        D("3"), D("2.4") * D("0.85"), D("3"), D("2.04"))
    oct_ = rows.filter(pl.col("ChargePeriodStart").dt.month() == 10).row(0, named=True)
    assert (oct_["ListCost"], oct_["BilledCost"]) == (D("3"), D("2.55"))


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_audit_reconciles_its_own_export(tmp_path, suffix):
    out = str(tmp_path / f"focus.{suffix}")
    q = str(tmp_path / "q.jsonl")
    r = CliRunner().invoke(main, ["report", "fixtures/sample", "--format", "focus", "-o", out, "--quarantine", q])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(main, ["audit", "fixtures/sample", "--invoice", out, "--format", "json", "--quarantine", q])
    assert r.exit_code == 0, r.output
    d = json.loads(r.stdout)
    assert d["invoice_format"] == "focus" and d["lines"]
    assert {line["status"] for line in d["lines"]} == {"ok"}
    assert {line["difference"] for line in d["lines"]} == {"0E-12"} or all(
        D(line["difference"]) == 0 for line in d["lines"])
    assert D(d["totals"]["billed"]) == D(d["totals"]["computed"]) == D("1.879380025")


def test_csv_is_exact_text_with_iso_dates(log, tmp_path):
    out = tmp_path / "f.csv"
    r = CliRunner().invoke(main, ["price", log, "--format", "focus", "-o", str(out), "--quarantine",
                                  str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert sum(D(r["BilledCost"]) for r in rows) == TOTAL
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", r[c]) for r in rows
               for c in ("ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"))
    assert all("E" not in r["BilledCost"] and not r["BilledCost"].startswith("+") for r in rows)


def test_hostile_dimension_values_stay_data(tmp_path):
    evil = '=HYPERLINK("http://x","y")'
    quote = 'a"b\\c\nd'
    key = "sk-ant-api03-" + "A" * 40
    p = tmp_path / "log.jsonl"
    p.write_text("".join(json.dumps({"timestamp": "2026-10-01T10:00:00Z", "model": "claude-haiku-4-5",
                                     "input_tokens": 1000, "output_tokens": 0, "workspace": w, "project": quote,
                                     "api_key": key}) + "\n" for w in (evil,)))
    out = tmp_path / "f.csv"
    r = CliRunner().invoke(main, ["report", str(p), "--format", "focus", "-o", str(out), "--quarantine",
                                  str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    row = next(csv.DictReader(io.StringIO(out.read_text())))
    assert row["SubAccountName"] == "'" + evil  # neutralised: a spreadsheet shows it, never runs it
    tags = json.loads(row["Tags"])
    assert tags["workspace"] == evil and tags["project"] == quote
    assert key not in out.read_text() and tags["api_key"].startswith("sk-ant-api03-")


def test_bad_requests_are_one_line(log, tmp_path):
    q = str(tmp_path / "q.jsonl")
    r = CliRunner().invoke(main, ["report", log, "--format", "focus", "--tz", "Europe/Berlin", "--quarantine", q])
    assert r.exit_code == 2 and "FOCUS dates are UTC" in r.output
    r = CliRunner().invoke(main, ["report", log, "--format", "focus", "-o", str(tmp_path / "x.json"), "--quarantine", q])
    assert r.exit_code == 2 and ".csv or .parquet" in r.output
    r = CliRunner().invoke(main, ["report", log, "--format", "focus", "--quarantine", q])  # stdout: CSV
    assert r.exit_code == 0 and r.stdout.startswith("BilledCost,")


_GRAIN = ("not with --format focus, which writes every charge at FOCUS's own grain (UTC day x SKU price x the "
          "logs' dimensions); leave {} out, or use another --format")


@pytest.mark.parametrize(("args", "named"), [
    (["--top", "3"], "--top"), (["--by", "day"], "--by"), (["--by", "model"], "--by"),  # (model: the default, said)
    (["--sort", "-cost"], "--sort"), (["--columns", "cost"], "--columns"), (["--precision", "4"], "--precision"),
    (["--by", "day,model", "--top", "2"], "--by, --top"),
])
def test_options_that_shape_a_report_are_refused_with_focus_not_ignored(log, tmp_path, args, named):
    """They were ignored: `--top 3` wrote every row, `--by day` the FOCUS grain, with exit 0. A FOCUS export
    is every charge at the spec's grain, so each is one line naming the options, exit 2, and no file."""
    out = tmp_path / "f.csv"
    r = CliRunner().invoke(main, ["report", log, "--format", "focus", "-o", str(out), "--quarantine",
                                  str(tmp_path / "q.jsonl"), *args])
    assert r.exit_code == 2, r.output
    assert r.output == f"llm-cost: error: {named}: " + _GRAIN.format("them" if "," in named else "it") + "\n"
    assert not out.exists()


@pytest.mark.parametrize("command", [["report"], ["report", "--format", "csv"], ["price", "-o", "rows.csv"]])
def test_billing_account_without_focus_is_refused(log, tmp_path, monkeypatch, command):
    """--billing-account names FOCUS rows' account; with any other output it was ignored, exit 0."""
    monkeypatch.chdir(tmp_path)
    r = CliRunner().invoke(main, [*command, log, "--billing-account", "acme", "--quarantine", "q.jsonl"])
    assert r.exit_code == 2, r.output
    assert r.output == ("llm-cost: error: --billing-account: applies to --format focus (other outputs have no "
                        "billing account)\n")
    assert not (tmp_path / "rows.csv").exists()


def test_platform_names_the_provider_and_residency_the_region(tmp_path):
    p = tmp_path / "log.csv"
    p.write_text("timestamp,model,platform,inference_geo,input_tokens,output_tokens\n"
                 "2026-10-01T10:00:00Z,claude-haiku-4-5,bedrock,,1000,0\n"
                 "2026-10-01T10:00:00Z,claude-haiku-4-5,anthropic,us,1000,0\n")
    rows = {r["BillingAccountId"]: r for r in export([str(p)], tmp_path).rows.to_dicts()}
    assert (rows["bedrock"]["ProviderName"], rows["bedrock"]["ServiceName"], rows["bedrock"]["PublisherName"],
            rows["bedrock"]["RegionId"]) == ("AWS", "Amazon Bedrock", "Anthropic", None)
    assert (rows["anthropic"]["RegionId"], rows["anthropic"]["RegionName"]) == ("us", "United States")
    out = focus.export([str(p)], pipeline.Options(quarantine=str(tmp_path / "q.jsonl")), billing_account="acme").rows
    assert set(out["BillingAccountId"]) == {"acme"}


def test_export_with_no_priced_row_says_zero_not_a_traceback(tmp_path):
    # Every row unpriced: no FOCUS row, and the summary line must still print $0.00.
    p = tmp_path / "log.csv"
    p.write_text("request_id,timestamp,model,input_tokens,output_tokens\nr1,2026-10-01T10:00:00Z,claude-nope,10,1\n")
    out = tmp_path / "f.csv"
    r = CliRunner().invoke(main, ["report", str(p), "--format", "focus", "-o", str(out), "--quarantine",
                                  str(tmp_path / "q.jsonl")])
    assert r.exit_code == 0, r.output
    assert "0 FOCUS rows, BilledCost $0.00" in r.output
    assert out.read_text().startswith("BilledCost,") and len(out.read_text().splitlines()) == 1
    assert "llm-cost: warning: no request was priced, so the FOCUS export has its columns and no charge rows" \
        in r.stderr


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_an_empty_focus_export_audits_as_billing_nothing(tmp_path, suffix):
    """A FOCUS export of logs nothing in which was priced is its columns alone; `audit` said "no invoice
    lines" (exit 2) about it. An invoice with no charge lines bills $0 and names no period: against
    the logs it came from, nothing differs (exit 0); against logs with priced usage, each priced day
    is missing from the invoice (exit 1)."""
    unpriced = tmp_path / "unpriced.csv"
    unpriced.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                        "r1,2026-10-01T10:00:00Z,claude-nope,10,1\n")
    out = tmp_path / f"f{suffix}"
    q = str(tmp_path / "q.jsonl")
    assert CliRunner().invoke(main, ["report", str(unpriced), "--format", "focus", "-o", str(out), "-q",
                                     "--quarantine", q]).exit_code == 0
    r = CliRunner().invoke(main, ["audit", str(unpriced), "--invoice", str(out), "--format", "json", "--quarantine", q])
    assert r.exit_code == 0, r.output
    doc = json.loads(r.stdout)
    assert doc["lines"] == [] and doc["totals"] == {"billed": "0.000000000000", "computed": "0.000000000000",
                                                    "difference": "0.000000000000"}
    assert any(n.startswith("the invoice has no charge lines: it bills nothing") for n in doc["notes"])
    # Priced usage on two days (sonnet 4.5: 1M input x $3/M = $3; 100K output x $15/M = $1.50).
    priced = tmp_path / "priced.csv"
    priced.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                      "p1,2026-10-01T10:00:00Z,claude-sonnet-4-5,1000000,0\n"
                      "p2,2026-10-03T10:00:00Z,claude-sonnet-4-5,0,100000\n")
    r = CliRunner().invoke(main, ["audit", str(priced), "--invoice", str(out), "--format", "json", "--quarantine", q])
    assert r.exit_code == 1, r.output
    lines = json.loads(r.stdout)["lines"]
    assert [(x["period"], x["billed"], x["computed"], x["status"]) for x in lines] == [
        ("2026-10-01", None, "3.000000000000", "missing_in_invoice"),
        ("2026-10-03", None, "1.500000000000", "missing_in_invoice")]


# ---------------------------------------------------------------------------------------------
# FOCUS from the store (`report --store DIR --format focus`): it was refused


def _focus_cli(*args):
    return CliRunner().invoke(main, ["report", *map(str, args), "--format", "focus"])


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_focus_from_the_store_is_the_export_of_its_logs(tmp_path, suffix):
    """The sample ingested, then exported from the store: byte for byte the export of the logs (the
    same rows, grain, list and contracted prices, Tags), and `audit --store` of it is all ok."""
    q = tmp_path / "q.jsonl"
    st = tmp_path / "st"
    assert CliRunner().invoke(main, ["ingest", "fixtures/sample", "--store", str(st), "-q"]).exit_code == 0
    from_logs, from_store = tmp_path / f"logs{suffix}", tmp_path / f"store{suffix}"
    assert _focus_cli("fixtures/sample", "-o", from_logs, "-q", "--quarantine", q).exit_code == 0
    r = _focus_cli("--store", st, "-o", from_store)
    assert r.exit_code == 0, r.output
    assert "wrote " + str(from_store) + ": 47 FOCUS rows, BilledCost $1.88; rows read 25 = priced 19" in r.stderr
    if suffix == ".csv":
        assert from_store.read_bytes() == from_logs.read_bytes()
        assert sum((D(r["BilledCost"]) for r in csv.DictReader(io.StringIO(from_store.read_text()))), D(0)) == \
            D("1.879380025")
    else:
        assert pl.read_parquet(from_store).equals(pl.read_parquet(from_logs))
        assert pl.read_parquet(from_store)["BilledCost"].sum() == D("1.879380025")
    r = CliRunner().invoke(main, ["audit", "--store", str(st), "--invoice", str(from_store), "-q"])
    assert r.exit_code == 0 and "47 of 47 lines within tolerance" in r.stdout


def test_focus_from_a_store_keeps_the_costs_it_stored(log, tmp_path):
    """Ingested with negotiated prices (15% off from 2026-10-01): the store's export has the stored,
    contracted costs and the shipped book's list prices, as the export of the logs with that overlay
    has; its rows add up to `report --store`."""
    overlay = "fixtures/prices/negotiated.toml"
    st = tmp_path / "st"
    assert CliRunner().invoke(main, ["ingest", log, "--store", str(st), "--prices", overlay, "-q"]).exit_code == 0
    store_rows = focus.export_store(str(st)).rows
    log_rows = export([log], tmp_path, prices=(overlay,)).rows
    assert store_rows.equals(log_rows)
    # r1's input: 100,000 x $3/M = $0.30 list, 15% off = $0.255 contracted.
    r1 = store_rows.filter(pl.col("SkuPriceId") == "claude-sonnet-4-5-20250929:input:standard").row(0, named=True)
    assert (r1["ListCost"], r1["BilledCost"], r1["ListUnitPrice"], r1["ContractedUnitPrice"]) == (
        D("0.3"), D("0.255"), D("3"), D("2.55"))
    total = sum(store_rows["BilledCost"].to_list(), D(0))
    assert total == TOTAL * D("0.85")
    rep = json.loads(CliRunner().invoke(main, ["report", "--store", str(st), "--format", "json", "-q"]).stdout)
    assert D(rep["totals"]["cost"]) == total


def test_focus_from_a_store_follows_the_date_window_and_is_empty_with_a_reason(log, tmp_path):
    st = tmp_path / "st"
    CliRunner().invoke(main, ["ingest", log, "--store", str(st), "-q"])
    rows = focus.export_store(str(st), pipeline.Options(since="2026-10-02")).rows
    # only r3 (haiku output 20,000 x $5/M = $0.10, 2 web searches x $10/1000 = $0.02)
    assert sum(rows["BilledCost"].to_list(), D(0)) == D("0.12") and set(rows["x_TokenClass"]) == {"output", "web_search"}
    out = tmp_path / "f.csv"
    r = _focus_cli("--store", st, "--since", "2027-01-01", "-o", out)
    assert r.exit_code == 0 and len(out.read_text().splitlines()) == 1
    assert "no request was priced, so the FOCUS export has its columns and no charge rows" in r.stderr
    # Still refused: what the store cannot mean.
    assert "--tz" in _focus_cli("--store", st, "--tz", "Europe/Paris").output
    r = _focus_cli("--store", st, "-o", st / "x.csv")
    assert r.exit_code == 2 and "inside the store" in r.output


def test_audit_notes_say_one_row_in_the_singular(tmp_path):
    """audit said "1 log rows are unpriced" and "1 duplicate log rows ... were counted once"."""
    q = str(tmp_path / "q.jsonl")
    out = tmp_path / "f.csv"
    CliRunner().invoke(main, ["report", "fixtures/sample", "--format", "focus", "-o", str(out), "-q", "--quarantine", q])
    notes = json.loads(CliRunner().invoke(main, ["audit", "fixtures/sample", "--invoice", str(out), "--format", "json",
                                                 "-q", "--quarantine", q]).stdout)["notes"]
    assert "1 log row is unpriced, so its cost is missing from `computed`: claude-sonnett-5-5 (1)" in notes
    assert "1 duplicate log row (repeated request ids) was counted once" in notes
    assert any(n.startswith("4 log rows were quarantined") for n in notes)
