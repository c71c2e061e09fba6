"""Invoice audit end to end: a month of logs and a cost report built from them by hand (Decimal,
the published rates), then the same with one day of logs removed, one price changed and one model
unknown: each found, with its computed cause, and exit 1."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import polars as pl
import pytest
from click.testing import CliRunner

from analyzer.audit import Tolerance
from analyzer.cli import main

from .conftest import canonical_frame, write_frame

SONNET = "claude-sonnet-4-5-20250929"
HAIKU = "claude-haiku-4-5-20251001"
DAYS = [dt.date(2026, 10, 1) + dt.timedelta(days=i) for i in range(31)]
# Per day: (model, service tier, tokens per class, web searches). Rates (USD/MTok) from the price book:
# Sonnet 4.5 input 3, 5m write 3.75, cache read 0.30, output 15; Haiku 4.5 batch = half of 1 / 5.
USAGE = [
    (SONNET, "standard", {"input": 100_000, "cache_write_5m": 20_000, "cache_read": 500_000, "output": 50_000}, 3),
    (HAIKU, "batch", {"input": 1_000_000, "output": 100_000}, 0),
]
RATES = {
    (SONNET, "standard"): {"input": Decimal(3), "cache_write_5m": Decimal("3.75"), "cache_read": Decimal("0.3"),
                           "output": Decimal(15)},
    (HAIKU, "batch"): {"input": Decimal("0.5"), "output": Decimal("2.5")},
}
ADMIN_TOKEN_TYPE = {"input": "uncached_input_tokens", "cache_write_5m": "cache_creation.ephemeral_5m_input_tokens",
                    "cache_read": "cache_read_input_tokens", "output": "output_tokens"}
COLUMN = {"input": "input_tokens", "cache_write_5m": "cache_write_5m_tokens", "cache_read": "cache_read_tokens",
          "output": "output_tokens"}
MONTH_TOTAL = 31 * (Decimal("0.3") + Decimal("0.075") + Decimal("0.15") + Decimal("0.75")  # sonnet per day
                    + Decimal("0.5") + Decimal("0.25")  # haiku batch per day
                    + Decimal("0.03"))  # 3 web searches at $10 per 1,000


def logs(tmp_path, drop_day: dt.date | None = None, unknown: bool = False, shared_id_day: dt.date | None = None):
    """Each day's usage split over two requests (so sums, not single rows, are compared).
    `shared_id_day`: that day's two Sonnet requests carry the same id (a proxy reusing ids)."""
    rows = []
    for day in DAYS:
        if day == drop_day:
            continue
        for model, tier, tokens, searches in USAGE:
            for half in (0, 1):
                rid = f"{day}-{model}" + ("" if day == shared_id_day and model == SONNET else f"-{half}")
                row = {"request_id": rid, "timestamp": f"{day}T{9 + half:02d}:30:00Z",
                       "model": model, "service_tier": tier, "web_search_requests": searches if half else 0,
                       **{COLUMN[k]: v // 2 for k, v in tokens.items()}}
                rows.append({"input_tokens": 0, "output_tokens": 0, **row})
        if unknown:
            rows.append({"request_id": f"{day}-nova", "timestamp": f"{day}T12:00:00Z", "model": "claude-nova-1",
                         "input_tokens": 1_000_000, "output_tokens": 100_000})
    return write_frame(canonical_frame(rows), tmp_path / "logs.csv")


def cost_report(tmp_path, cache_read_rate: Decimal = Decimal("0.3"), unknown: bool = False):
    """An Admin API cost report of the month, computed here from the usage and rates: cents as strings."""
    buckets = []
    for day in DAYS:
        results = []
        for model, tier, tokens, _ in USAGE:
            for k, n in tokens.items():
                rate = cache_read_rate if k == "cache_read" else RATES[model, tier][k]
                cents = Decimal(n) * rate / 10_000  # n / 1e6 * rate dollars * 100
                results.append({"currency": "USD", "amount": str(cents), "workspace_id": None,
                                "description": None, "cost_type": "tokens", "context_window": "0-200k",
                                "model": model, "service_tier": tier, "token_type": ADMIN_TOKEN_TYPE[k],
                                "inference_geo": None})
        searches = sum(u[3] for u in USAGE)  # $10 per 1,000, in cents
        results.append({"currency": "USD", "amount": str(Decimal(searches) * 10 / 1000 * 100), "workspace_id": None,
                        "description": "Web Search",
                        "cost_type": "web_search", "context_window": None, "model": None, "service_tier": None,
                        "token_type": None, "inference_geo": None})
        if unknown:  # a model the book does not know: 1M input at $2/MTok, 100K output at $10/MTok
            for tt, cents in (("uncached_input_tokens", "200"), ("output_tokens", "100")):
                results.append({"currency": "USD", "amount": cents, "workspace_id": None, "cost_type": "tokens",
                                "context_window": "0-200k", "model": "claude-nova-1", "service_tier": "standard",
                                "token_type": tt})
        buckets.append({"starting_at": f"{day}T00:00:00Z", "ending_at": f"{day + dt.timedelta(days=1)}T00:00:00Z",
                        "results": results})
    path = tmp_path / "cost_report.json"
    path.write_text(json.dumps({"data": buckets, "has_more": False, "next_page": None}))
    return path


def audit(*args):
    r = CliRunner().invoke(main, ["audit", *[str(a) for a in args], "--format", "json", "-q"], catch_exceptions=False)
    return r, (json.loads(r.stdout) if r.stdout.startswith("{") else None)


@pytest.fixture
def q(tmp_path):
    return ["--quarantine", str(tmp_path / "q.jsonl")]


def test_matching_month_is_all_ok(tmp_path, q):
    r, doc = audit(logs(tmp_path), "--invoice", cost_report(tmp_path), *q)
    assert r.exit_code == 0, r.output
    assert doc["within_tolerance"] is True and doc["invoice_format"] == "admin-cost-report"
    assert doc["grain"] == ["day", "model", "token_type", "service_tier", "context_tier"]
    assert len(doc["lines"]) == 31 * 7  # 4 sonnet + 2 haiku token types + web search, per day
    assert {ln["status"] for ln in doc["lines"]} == {"ok"}
    assert all(Decimal(ln["difference"]) == 0 for ln in doc["lines"])
    assert Decimal(doc["totals"]["billed"]) == Decimal(doc["totals"]["computed"]) == MONTH_TOTAL
    web = [ln for ln in doc["lines"] if ln["token_type"] == "web_search"]
    assert len(web) == 31 and web[0]["model"] is None and Decimal(web[0]["computed"]) == Decimal("0.03")


def test_a_day_of_logs_missing(tmp_path, q):
    r, doc = audit(logs(tmp_path, drop_day=dt.date(2026, 10, 14)), "--invoice", cost_report(tmp_path), *q)
    assert r.exit_code == 1
    bad = [ln for ln in doc["lines"] if ln["status"] != "ok"]
    assert {ln["period"] for ln in bad} == {"2026-10-14"} and len(bad) == 7
    assert {ln["status"] for ln in bad} == {"missing_in_logs"}
    assert {ln["cause"] for ln in bad} == {"logs missing for 2026-10-14"}
    assert Decimal(doc["totals"]["difference"]) == MONTH_TOTAL / 31


def test_a_day_of_logs_missing_on_a_monthly_grain(tmp_path, q):
    r, doc = audit(logs(tmp_path, drop_day=dt.date(2026, 10, 14)), "--invoice", cost_report(tmp_path),
                   "--by", "month,model", *q)
    assert r.exit_code == 1
    lines = {ln["model"]: ln for ln in doc["lines"]}
    assert set(lines) == {SONNET, HAIKU, None}
    sonnet = lines[SONNET]
    assert sonnet["status"] == "over" and sonnet["period"] == "2026-10"
    assert Decimal(sonnet["difference"]) == Decimal("1.275")  # one day of Sonnet
    # The token types are named (the invoice carries them), and the missing day.
    assert sonnet["cause"].startswith("differs in input ($0.30), cache_write_5m ($0.08), cache_read ($0.15), "
                                      "output ($0.75); logs missing for 2026-10-14"), sonnet["cause"]


def test_a_token_type_missing_from_the_invoice_joins_its_coarser_line(tmp_path, q):
    report = cost_report(tmp_path)
    doc = json.loads(report.read_text())
    for bucket in doc["data"]:
        bucket["results"] = [r for r in bucket["results"] if r["token_type"] != "cache_read_input_tokens"]
    report.write_text(json.dumps(doc))
    r, out = audit(logs(tmp_path), "--invoice", report, "--by", "month,model", *q)
    assert r.exit_code == 1
    sonnet = [ln for ln in out["lines"] if ln["model"] == SONNET]
    assert len(sonnet) == 1 and sonnet[0]["status"] == "under"
    assert Decimal(sonnet[0]["difference"]) == -31 * Decimal("0.15")
    assert sonnet[0]["cause"] == "differs in cache_read (-$4.65); logged usage with no matching invoice line"
    assert {ln["status"] for ln in out["lines"] if ln["model"] != SONNET} == {"ok"}


def test_a_cost_type_llm_cost_does_not_price(tmp_path, q):
    report = cost_report(tmp_path)
    doc = json.loads(report.read_text())
    doc["data"][0]["results"].append({"currency": "USD", "amount": "250", "cost_type": "code_execution",
                                      "model": None, "token_type": None, "service_tier": None, "context_window": None})
    report.write_text(json.dumps(doc))
    r, out = audit(logs(tmp_path), "--invoice", report, *q)
    assert r.exit_code == 1
    bad = [ln for ln in out["lines"] if ln["status"] != "ok"]
    assert [(ln["period"], ln["token_type"], ln["billed"], ln["status"], ln["cause"]) for ln in bad] == [
        ("2026-10-01", "code_execution", "2.500000000000", "missing_in_logs", "llm-cost has no price for code_execution")]


def test_duplicates_that_were_billed_are_named(tmp_path, q):
    r, doc = audit(logs(tmp_path, shared_id_day=dt.date(2026, 10, 10)), "--invoice", cost_report(tmp_path),
                   "--by", "day,model", *q)
    assert r.exit_code == 1
    bad = [ln for ln in doc["lines"] if ln["status"] != "ok"]
    # One of the day's two Sonnet requests (half its tokens) was dropped as a duplicate of the other;
    # the copy kept is the one with the web searches (more usage), so the web-search line still matches.
    assert [(ln["period"], ln["model"], ln["status"]) for ln in bad] == [("2026-10-10", SONNET, "over")]
    assert Decimal(bad[0]["difference"]) == Decimal("1.275") / 2
    assert bad[0]["cause"].endswith("counting every copy of duplicate log rows adds $0.64 here, which brings the "
                                    "line within tolerance"), bad[0]["cause"]
    assert doc["accounting"]["duplicates"] == 1


def test_a_price_that_differs_names_the_rate(tmp_path, q):
    r, doc = audit(logs(tmp_path), "--invoice", cost_report(tmp_path, cache_read_rate=Decimal("0.6")), *q)
    assert r.exit_code == 1
    bad = [ln for ln in doc["lines"] if ln["status"] != "ok"]
    assert len(bad) == 31 and {(ln["model"], ln["token_type"], ln["status"]) for ln in bad} == {
        (SONNET, "cache_read", "over")}
    assert {ln["cause"] for ln in bad} == {
        f"billed $0.60/MTok for cache_read, book says $0.30 ({SONNET} since 2025-09-29)"}
    assert {Decimal(ln["difference"]) for ln in bad} == {Decimal("0.15")}
    assert {Decimal(ln["relative"]) for ln in bad} == {Decimal("0.5")}


def test_an_overlay_price_is_the_book_rate(tmp_path, q):
    """A negotiated overlay changes the book's side: the invoice at list price is now `over`."""
    overlay = tmp_path / "deal.toml"
    overlay.write_text(f'[[model]]\nid = "{SONNET}"\n\n  [[model.period]]\n  from = 2026-10-01\n  input = 3\n'
                       '  cache_write_5m = 3.75\n  cache_write_1h = 6\n  cache_read = 0.15\n  output = 15\n')
    r, doc = audit(logs(tmp_path), "--invoice", cost_report(tmp_path), "--prices", overlay, *q)
    assert r.exit_code == 1, r.output
    bad = {ln["cause"] for ln in doc["lines"] if ln["status"] != "ok"}
    assert bad == {f"billed $0.30/MTok for cache_read, book says $0.15 ({SONNET} since 2026-10-01)"}


def test_a_blend_of_book_rates_is_named_as_a_blend(tmp_path, q):
    """Opus 4.6 output $25/MTok, $27.50 with US-only inference (x1.1): 900,000 global + 100,000 US
    tokens cost 22.50 + 2.75 = $25.25. An invoice billing all 1M at $27.50 is $2.25 over; the cause
    gives the book's two rates and the $25.25 blend the logs imply, separately."""
    rows = [{"request_id": "g", "timestamp": "2026-10-01T09:00:00Z", "model": "claude-opus-4-6", "input_tokens": 0,
             "output_tokens": 900_000},
            {"request_id": "u", "timestamp": "2026-10-01T10:00:00Z", "model": "claude-opus-4-6", "input_tokens": 0,
             "output_tokens": 100_000, "inference_geo": "us"}]
    log = write_frame(canonical_frame(rows), tmp_path / "logs.csv")
    result = {"currency": "USD", "amount": "2750", "workspace_id": None, "description": None, "cost_type": "tokens",
              "context_window": "0-200k", "model": "claude-opus-4-6", "service_tier": "standard",
              "token_type": "output_tokens", "inference_geo": None}
    report = tmp_path / "cost_report.json"
    report.write_text(json.dumps({"data": [{"starting_at": "2026-10-01T00:00:00Z", "ending_at": "2026-10-02T00:00:00Z",
                                            "results": [result]}], "has_more": False, "next_page": None}))
    r, doc = audit(log, "--invoice", report, *q)
    assert r.exit_code == 1, r.output
    [line] = doc["lines"]
    assert (Decimal(line["billed"]), Decimal(line["computed"])) == (Decimal("27.5"), Decimal("25.25"))
    assert line["cause"] == ("billed $27.50/MTok for output; book rates $25.00 (standard), $27.50 (us_geo) "
                             "(claude-opus-4-6 since 2026-03-13); the logs' mix of them implies $25.25")


def test_an_unknown_model_is_named(tmp_path, q):
    r, doc = audit(logs(tmp_path, unknown=True), "--invoice", cost_report(tmp_path, unknown=True), *q)
    assert r.exit_code == 1
    bad = [ln for ln in doc["lines"] if ln["status"] != "ok"]
    assert len(bad) == 31 * 2 and {ln["model"] for ln in bad} == {"claude-nova-1"}
    assert {ln["status"] for ln in bad} == {"missing_in_logs"}
    # no "did you mean": the book has no Claude Nova line to suggest from (issue 14 §3)
    unpriced = "31 log rows of claude-nova-1 are unpriced (unknown model: claude-nova-1)"
    assert {ln["cause"] for ln in bad} == {unpriced}
    r, doc = audit(logs(tmp_path, unknown=True), "--invoice", cost_report(tmp_path, unknown=True),
                   "--by", "month,model", *q)
    assert r.exit_code == 1
    nova = [ln for ln in doc["lines"] if ln["model"] == "claude-nova-1"]
    assert len(nova) == 1 and nova[0]["status"] == "missing_in_logs"
    assert Decimal(nova[0]["billed"]) == 31 * 3
    assert nova[0]["cause"] == f"differs in input ($62.00), output ($31.00); {unpriced}"
    assert any("unpriced" in n for n in doc["notes"])
    assert doc["accounting"]["unpriced"] == 31


def test_priority_rows_are_left_out_against_the_admin_report(tmp_path, q):
    path = logs(tmp_path)
    extra = canonical_frame([{"request_id": "p", "timestamp": "2026-10-05T10:00:00Z", "model": SONNET,
                              "service_tier": "priority", "input_tokens": 1_000_000, "output_tokens": 0}])
    write_frame(extra, tmp_path / "priority.csv")
    r, doc = audit(path, tmp_path / "priority.csv", "--invoice", cost_report(tmp_path), *q)
    assert r.exit_code == 0, r.output
    assert any("Priority Tier usage ($3.00 computed)" in n for n in doc["notes"])


def test_usage_not_on_the_invoice(tmp_path, q):
    report = cost_report(tmp_path)
    doc = json.loads(report.read_text())
    doc["data"] = [b for b in doc["data"] if b["starting_at"] != "2026-10-20T00:00:00Z"]
    report.write_text(json.dumps(doc))
    r, out = audit(logs(tmp_path), "--invoice", report, "--since", "2026-10-01", "--until", "2026-10-31", *q)
    assert r.exit_code == 1
    bad = [ln for ln in out["lines"] if ln["status"] != "ok"]
    assert {ln["period"] for ln in bad} == {"2026-10-20"}
    assert {ln["status"] for ln in bad} == {"missing_in_invoice"}
    assert {ln["cause"] for ln in bad} == {"the invoice has no lines for 2026-10-20"}


# ----------------------------------------------------------------------------------------------
# Tolerance: dollars and percent, both sides of each boundary


def plain_invoice(tmp_path, amount: Decimal):
    path = tmp_path / "invoice.csv"
    path.write_text(f"period,model,amount_usd\n2026-10,{SONNET},{amount}\n2026-10,{HAIKU},{31 * Decimal('0.75')}\n")
    return path


@pytest.mark.parametrize("billed_over,tolerance,code", [
    (Decimal("0.50"), "0.50", 0), (Decimal("0.51"), "0.50", 1),
    (Decimal("-0.50"), "0.50", 0), (Decimal("-0.51"), "0.50", 1),
    (Decimal("0.009"), "0", 0), (Decimal("0.01"), "0", 1),  # under one cent is rounding
    (Decimal("0.01"), "0.01", 0),
])
def test_dollar_tolerance_boundaries(tmp_path, q, billed_over, tolerance, code):
    sonnet_month = 31 * (Decimal("1.275") + Decimal("0.03"))
    r, doc = audit(logs(tmp_path), "--invoice", plain_invoice(tmp_path, sonnet_month + billed_over),
                   "--tolerance", tolerance, *q)
    assert r.exit_code == code, r.output
    line = next(ln for ln in doc["lines"] if ln["model"] == SONNET)
    assert Decimal(line["difference"]) == billed_over
    assert line["status"] == ("ok" if code == 0 else "over" if billed_over > 0 else "under")


@pytest.mark.parametrize("tolerance,code", [("50%", 0), ("49.99%", 1), ("50.01%", 0)])
def test_percent_tolerance_boundaries(tmp_path, q, tolerance, code):
    sonnet_month = 31 * (Decimal("1.275") + Decimal("0.03"))
    # billed twice the computed amount: the difference is exactly 50% of what was billed
    r, doc = audit(logs(tmp_path), "--invoice", plain_invoice(tmp_path, 2 * sonnet_month), "--tolerance", tolerance,
                   *q)
    assert r.exit_code == code, r.output
    line = next(ln for ln in doc["lines"] if ln["model"] == SONNET)
    assert Decimal(line["relative"]) == Decimal("0.5")


def test_tolerance_parsing():
    assert Tolerance.parse("0.50") == Tolerance(Decimal("0.50"), None)
    assert Tolerance.parse(" 0.5% ") == Tolerance(None, Decimal("0.5"))
    assert str(Tolerance.parse("1%")) == "1%"
    for bad in ("", "abc", "-1", "nan%", "inf"):
        with pytest.raises(Exception, match="--tolerance"):
            Tolerance.parse(bad)


def test_within_is_inclusive_and_rounding_is_under_a_cent():
    frame = pl.DataFrame({"d": [Decimal("0.5"), Decimal("0.500000000001"), Decimal("0.009999"), Decimal("0.01")],
                          "b": [Decimal(100)] * 4}, schema={"d": pl.Decimal(38, 12), "b": pl.Decimal(38, 12)})
    dollars = frame.select(Tolerance(Decimal("0.5")).within(pl.col("d"), pl.col("b")))[:, 0].to_list()
    assert dollars == [True, False, True, True]
    pct = frame.select(Tolerance(None, Decimal("0.5")).within(pl.col("d"), pl.col("b")))[:, 0].to_list()
    assert pct == [True, False, True, True]
    zero = frame.select(Tolerance(Decimal(0)).within(pl.col("d"), pl.col("b")))[:, 0].to_list()
    assert zero == [False, False, True, False]


# ----------------------------------------------------------------------------------------------
# CLI: formats, bad input


def test_table_markdown_and_csv(tmp_path, q):
    invoice = cost_report(tmp_path, cache_read_rate=Decimal("0.6"))
    log = logs(tmp_path)
    r = CliRunner().invoke(main, ["audit", str(log), "--invoice", str(invoice), "--by", "month,model", *q],
                           catch_exceptions=False)
    assert r.exit_code == 1
    assert "over" in r.stdout and "1 over" in r.stdout and "half-even" in r.stdout
    for ext in ("md", "csv"):
        out = tmp_path / f"audit.{ext}"
        r = CliRunner().invoke(main, ["audit", str(log), "--invoice", str(invoice), "-o", str(out), *q],
                               catch_exceptions=False)
        assert r.exit_code == 1 and "31 out of tolerance" in r.stderr
        text = out.read_text()
        # (Markdown escapes `$`: GitHub would read `$...$` as math)
        assert ("billed \\$0.60/MTok for cache_read" if ext == "md" else "billed $0.60/MTok for cache_read") in text
    rows = pl.read_csv(tmp_path / "audit.csv", infer_schema=False)
    assert rows.filter(pl.col("status") == "over")["difference"].unique().to_list() == ["0.150000000000"]


@pytest.mark.parametrize("content,message", [
    ("period,model,amount_usd\n2026-10-01,x,12,5\n", "cannot read CSV"),
    ("period,model,amount_usd\n2026-10-01,x,abc\n", "line 2: amount 'abc' is not a decimal number"),
    ("period,model,amount_usd\n2026-13-01,x,1\n", "line 2: period"),
    ("a,b\n1,2\n", "not a known invoice format"),
    ("{\"data\": 3}", "expected a report page"),
    ("{\"data\": [", "not valid JSON"),
])
def test_bad_invoice_is_one_line_exit_2(tmp_path, q, content, message):
    bad = tmp_path / ("bad.json" if content.startswith("{") else "bad.csv")
    bad.write_text(content)
    r = CliRunner().invoke(main, ["audit", str(logs(tmp_path)), "--invoice", str(bad), *q])
    assert r.exit_code == 2, r.output
    assert message in r.stderr and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr


@pytest.mark.parametrize("args,message", [
    (["--tolerance", "x"], "--tolerance"),
    (["--by", "day,colour"], "--by 'colour'"),
    (["--by", "workspace"], "does not carry"),
    (["--tz", "Europe/Berlin"], "an audit compares UTC days"),
    (["-o", "audit.jsonl"], "an audit is written as table, csv, json, markdown or html"),
])
def test_bad_options_exit_2(tmp_path, q, args, message):
    r = CliRunner().invoke(main, ["audit", str(logs(tmp_path)), "--invoice", str(plain_invoice(tmp_path, Decimal(1))),
                                  *args, *q])
    assert r.exit_code == 2 and message in r.stderr, r.output


def test_a_report_audits_clean_against_itself(tmp_path, q):
    """llm-cost's own fine-grained report, written as a plain CSV invoice (with service tier and
    context window columns), reconciles exactly with the logs it came from."""
    from .conftest import SAMPLE

    fine = tmp_path / "fine.csv"
    r = CliRunner().invoke(main, ["report", str(SAMPLE), "--by", "day,model,service_tier,context_tier,component",
                                  "-o", str(fine), "-q", *q])
    assert r.exit_code == 0, r.output
    invoice = tmp_path / "invoice.csv"
    pl.read_csv(fine, infer_schema=False).select(
        pl.col("day").alias("period"), "model", pl.col("component").alias("token_type"), "service_tier",
        pl.col("context_tier").alias("context_window"), pl.col("cost").alias("amount_usd")).write_csv(invoice)
    r, doc = audit(SAMPLE, "--invoice", invoice, "--tolerance", "0", *q)
    assert r.exit_code == 0, r.output
    assert {ln["status"] for ln in doc["lines"]} == {"ok"}
    assert all(Decimal(ln["difference"]) == 0 for ln in doc["lines"])
    assert doc["grain"] == ["day", "model", "token_type", "service_tier", "context_tier"]


def test_workspaces_are_compared_only_when_asked(tmp_path, q):
    sonnet, haiku = 31 * (Decimal("1.275") + Decimal("0.03")), 31 * Decimal("0.75")
    invoice = tmp_path / "invoice.csv"
    invoice.write_text(f"period,model,workspace,amount_usd\n2026-10,{SONNET},default,{sonnet}\n"
                       f"2026-10,{HAIKU},research,{haiku}\n")
    r, doc = audit(logs(tmp_path), "--invoice", invoice, *q)
    assert r.exit_code == 0, r.output
    assert doc["grain"] == ["month", "model"]
    r, doc = audit(logs(tmp_path), "--invoice", invoice, "--by", "month,model,workspace", *q)
    assert r.exit_code == 1
    got = {(ln["model"], ln["workspace"], ln["status"]) for ln in doc["lines"]}
    assert got == {(SONNET, "default", "ok"), (HAIKU, "research", "missing_in_logs"),
                   (HAIKU, "default", "missing_in_invoice")}


def test_audit_from_a_store_equals_audit_from_the_logs(tmp_path, q):
    log, invoice = logs(tmp_path, drop_day=dt.date(2026, 10, 14)), cost_report(tmp_path)
    store = tmp_path / "store"
    r = CliRunner().invoke(main, ["ingest", str(log), "--store", str(store), "-q"], catch_exceptions=False)
    assert r.exit_code == 0, r.output
    r_logs, from_logs = audit(log, "--invoice", invoice, *q)
    r_store, from_store = audit("--store", store, "--invoice", invoice)
    assert r_logs.exit_code == r_store.exit_code == 1
    assert from_store["lines"] == from_logs["lines"] and from_store["totals"] == from_logs["totals"]
    r, _ = audit(log, "--store", store, "--invoice", invoice, *q)
    assert r.exit_code == 2 and "not both" in r.output
