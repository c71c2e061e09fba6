"""Windows (fast mode, long context) and multipliers (US-only inference, regional endpoints, batch)
are dated facts of their own: a new base-price period keeps them, and `prices check` says when an
overlay cuts one. Costs are HAND-COMPUTED from the published $/MTok (pricebook `source` fields):
Opus 4.8 $5 in / fast $10 in (2026-05-28..2026-11-30); Sonnet 4 $3 in / >200K $6 in (2025-08-12..
2026-04-30); Opus 4.6 $5 in / fast $30 in (2026-02-07..2026-06-29); Claude 3.5 Sonnet $3 in, batch x0.5
from 2024-10-08; US-only inference x1.1 from 2026-02-05; regional endpoints x1.1 from 2025-09-29.
"""

from __future__ import annotations

import csv
import datetime as dt
from decimal import Decimal

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from analyzer import Options, analyze
from analyzer.cli import main
from analyzer.errors import PriceBookError
from analyzer.pricebook import load_price_book

D = Decimal
COLUMNS = ["request_id", "timestamp", "model", "service_tier", "speed", "inference_geo", "endpoint_scope",
           "platform", "context_window", "requests", "input_tokens", "output_tokens"]
O46, O48, S4 = "claude-opus-4-6", "claude-opus-4-8", "claude-sonnet-4-20250514"


def _priced(tmp_path, rows: list[dict], overlays: tuple[str, ...] = ()):
    path = tmp_path / "log.csv"
    with path.open("w", newline="") as f:
        w = csv.DictWriter(f, COLUMNS)
        w.writeheader()
        for i, r in enumerate(rows):
            w.writerow({"request_id": f"r{i}", "service_tier": "standard", "speed": "standard", "output_tokens": 0,
                        **r})
    return analyze([str(path)], [], Options(prices=overlays, quarantine=str(tmp_path / "q.jsonl")))


def _cost(tmp_path, overlays=(), **row) -> Decimal | None:
    """The cost of one request; None when it is unpriced."""
    rep = _priced(tmp_path, [row], tuple(overlays))
    return rep.totals["cost"] if rep.accounting.priced == 1 else None


def _overlay(tmp_path, text: str, name: str = "overlay.toml") -> str:
    p = tmp_path / name
    p.write_text(text)
    return str(p)


# A new period with the shipped rates: what a user adds to record a contract from a date.
OPUS48_FROM_AUGUST = ('[[model]]\nid = "claude-opus-4-8"\n[[model.period]]\nfrom = 2026-08-01\ninput = 5\n'
                      'cache_write_5m = 6.25\ncache_write_1h = 10\ncache_read = 0.5\noutput = 25\n')
SONNET4_FROM_2026 = ('[[model]]\nid = "claude-sonnet-4-20250514"\n[[model.period]]\nfrom = 2026-01-01\ninput = 3\n'
                     'cache_write_5m = 3.75\ncache_write_1h = 6\ncache_read = 0.3\noutput = 15\n')


@pytest.mark.parametrize("when, cost", [
    ("2026-07-31T23:59:59Z", D("10")),  # before the overlay period: 1M x $10 fast input
    ("2026-08-01T00:00:00Z", D("10")),  # the new period keeps the fast window
    ("2026-09-01T12:00:00Z", D("10")),  # the case ($5 before windows were facts of their own)
    ("2026-11-29T23:59:59Z", D("10")),
    ("2026-11-30T00:00:00Z", D("5")),   # fast mode removed: speed=fast bills standard, 1M x $5
])
def test_new_period_keeps_the_fast_window(tmp_path, when, cost):
    overlay = _overlay(tmp_path, OPUS48_FROM_AUGUST)
    row = dict(timestamp=when, model=O48, speed="fast", input_tokens=1_000_000)
    assert _cost(tmp_path, [overlay], **row) == cost
    assert _cost(tmp_path, **row) == cost  # the shipped book alone agrees


@pytest.mark.parametrize("when, cost", [
    ("2025-08-11T23:59:59Z", D("0.9")),  # before the 1M beta: 300,000 x $3 / 1M
    ("2025-08-12T00:00:00Z", D("1.8")),  # over 200K: 300,000 x $6 / 1M
    ("2025-12-31T23:59:59Z", D("1.8")),
    ("2026-01-01T00:00:00Z", D("1.8")),  # the overlay's new period keeps the band
    ("2026-02-01T00:00:00Z", D("1.8")),  # the case (halved to $0.9 before)
    ("2026-04-29T23:59:59Z", D("1.8")),
    ("2026-04-30T00:00:00Z", D("0.9")),  # beta retired: base rates
])
def test_new_period_keeps_the_long_context_band(tmp_path, when, cost):
    overlay = _overlay(tmp_path, SONNET4_FROM_2026)
    row = dict(timestamp=when, model=S4, input_tokens=300_000)
    assert _cost(tmp_path, [overlay], **row) == cost
    assert _cost(tmp_path, **row) == cost


def test_opus46_fast_window_is_written_once_and_spans_both_periods(tmp_path):
    m = load_price_book().models[O46]
    assert [p.start.date().isoformat() for p in m.periods] == ["2026-02-05", "2026-03-13"]
    assert [w.span() for w in m.fast] == ["2026-02-07..2026-06-29"]
    cases = [("2026-02-06T23:59:59Z", D("0.5")),   # 100,000 x $5 / 1M: no fast mode yet
             ("2026-02-07T00:00:00Z", D("3")),     # 100,000 x $30 / 1M
             ("2026-03-12T23:59:59Z", D("3")),
             ("2026-03-13T00:00:00Z", D("3")),     # the second period keeps it
             ("2026-06-28T23:59:59Z", D("3")),
             ("2026-06-29T00:00:00Z", D("0.5"))]   # removed: standard
    for when, cost in cases:
        assert _cost(tmp_path, timestamp=when, model=O46, speed="fast", input_tokens=100_000) == cost, when


# An overlay model on the anthropic provider, before and after each multiplier's start.
ACME = ('[[model]]\nid = "acme-claude"\nprovider = "anthropic"\nus_geo = true\nregional_premium = true\n'
        '[[model.period]]\nfrom = 2024-01-01\ninput = 1\noutput = 1\n')


@pytest.mark.parametrize("when, geo, model, cost", [
    ("2026-02-04T23:59:59Z", "us", "acme-claude", D("1")),      # 1M x $1: US-only inference not yet priced
    ("2026-02-05T00:00:00Z", "us", "acme-claude", D("1.1")),    # x1.1 from 2026-02-05
    ("2025-09-28T23:59:59Z", "", "us.anthropic.acme-claude", D("1")),  # us. profile: regional, before the premium
    ("2025-09-29T00:00:00Z", "", "us.anthropic.acme-claude", D("1.1")),
])
def test_multipliers_hold_from_their_date(tmp_path, when, geo, model, cost):
    overlay = _overlay(tmp_path, ACME)
    assert _cost(tmp_path, [overlay], timestamp=when, model=model, inference_geo=geo, input_tokens=1_000_000) == cost


def test_batch_has_a_price_from_the_batches_api_launch(tmp_path):
    row = dict(model="claude-3-5-sonnet-20240620", service_tier="batch", input_tokens=1_000_000)
    rep = _priced(tmp_path, [dict(row, timestamp="2024-10-07T23:59:59Z")])
    assert rep.accounting.unpriced == 1
    assert rep.accounting.unpriced_reasons["claude-3-5-sonnet-20240620"] == \
        "no batch tier price for claude-3-5-sonnet-20240620 before 2024-10-08"
    assert _cost(tmp_path, timestamp="2024-10-08T00:00:00Z", **row) == D("1.5")  # 1M x $3 x 0.5


# ---------------------------------------------------------------------------------------------
# prices check: what an overlay cuts or keeps


def _check(path: str):
    return CliRunner().invoke(main, ["prices", "check", path])


def test_check_says_a_new_period_keeps_a_window(tmp_path):
    r = _check(_overlay(tmp_path, OPUS48_FROM_AUGUST))
    assert r.exit_code == 0, r.output
    assert ("warning: " + str(tmp_path / "overlay.toml") + ": model claude-opus-4-8: the period from 2026-08-01 keeps "
            "the fast window 2026-05-28..2026-11-30 (input 10, output 50)") in r.output


def test_overlay_that_cuts_a_window_is_obeyed_and_warned(tmp_path):
    cut = _overlay(tmp_path, '[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-05-28\n'
                             'until = 2026-09-01\ninput = 10\noutput = 50\n')
    assert "cuts the fast window 2026-05-28..2026-11-30 to 2026-05-28..2026-09-01" in _check(cut).output
    row = dict(model=O48, speed="fast", input_tokens=1_000_000)
    assert _cost(tmp_path, [cut], timestamp="2026-08-31T23:59:59Z", **row) == D("10")
    assert _cost(tmp_path, [cut], timestamp="2026-09-01T00:00:00Z", **row) == D("5")


def test_overlay_window_layers_on_the_shipped_one(tmp_path):
    """A window from a later date wins where it overlaps; outside it the shipped window holds."""
    over = _overlay(tmp_path, '[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-08-01\n'
                              'until = 2026-10-01\ninput = 12\noutput = 60\n')
    assert "the fast window 2026-08-01..2026-10-01 replaces the rates of 2026-05-28..2026-11-30" in _check(over).output
    row = dict(model=O48, speed="fast", input_tokens=1_000_000)
    assert [_cost(tmp_path, [over], timestamp=t, **row) for t in (
        "2026-07-31T23:59:59Z", "2026-08-01T00:00:00Z", "2026-09-30T23:59:59Z", "2026-10-01T00:00:00Z")] == \
        [D("10"), D("12"), D("12"), D("10")]


def test_window_written_inside_a_period_is_a_fact_of_its_own(tmp_path):
    """The old spelling still reads, as a window a later period no longer ends; check says so."""
    old = _overlay(tmp_path, '[[model]]\nid = "acme"\n[[model.period]]\nfrom = 2026-01-01\ninput = 1\noutput = 1\n'
                             '[model.period.fast]\ninput = 4\noutput = 4\n'
                             '[[model.period]]\nfrom = 2026-03-01\ninput = 2\noutput = 2\n')
    out = _check(old).output
    assert "fast written inside a period is a window of its own (2026-01-01..open)" in out
    row = dict(model="acme", speed="fast", input_tokens=1_000_000)
    assert _cost(tmp_path, [old], timestamp="2026-02-28T23:59:59Z", **row) == D("4")
    assert _cost(tmp_path, [old], timestamp="2026-03-01T00:00:00Z", **row) == D("4")  # (was $2)
    assert _cost(tmp_path, [old], timestamp="2026-03-01T00:00:00Z", **dict(row, speed="standard")) == D("2")


def test_undated_multiplier_in_an_overlay_replaces_the_dated_one(tmp_path):
    over = _overlay(tmp_path, '[book]\nprovider = "anthropic"\n[book.multipliers]\nregional = 1.2\n')
    assert "x1.2 without dates replaces the dated x1.1 2025-09-29..open" in _check(over).output
    acme = _overlay(tmp_path, ACME, "acme.toml")
    row = dict(model="us.anthropic.acme-claude", input_tokens=1_000_000)
    assert _cost(tmp_path, [acme, over], timestamp="2025-01-01T00:00:00Z", **row) == D("1.2")


def test_shipped_book_is_quiet_and_writes_windows_outside_periods():
    book = load_price_book()
    assert book.warnings == []
    for name in ("anthropic.toml", "openai.toml"):
        text = (pytest.importorskip("importlib.resources").files("analyzer.pricebook") / name).read_text()
        assert "[model.period.fast]" not in text and "[model.period.long_context]" not in text, name
    for m in book.models.values():
        for w in m.windows():
            assert w.about.source and w.about.checked, (m.id, w.kind)


@pytest.mark.parametrize("text, message", [
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-01-01\nuntil = 2026-03-01\ninput = 1\noutput = 1\n'
     '[[model.fast]]\nfrom = 2026-02-01\ninput = 1\noutput = 1\n',
     "model claude-opus-4-8: two fast windows overlap (2026-01-01..2026-03-01 and 2026-02-01..open)"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\ninput = 1\noutput = 1\n', "fast #1: needs `from`"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-01-01\nthreshold = 5\ninput = 1\noutput = 1\n',
     "threshold belongs to long_context"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.long_context]]\nfrom = 2026-01-01\ninput = 1\noutput = 1\n',
     "threshold must be a positive"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-02-01\nuntil = 2026-01-01\ninput = 1\noutput = 1\n',
     "until must be after its from"),
    ('[book]\nprovider = "anthropic"\n[book.multipliers.regional]\nfrom = 2026-01-01\n', "needs `factor`"),
    ('[book]\nprovider = "anthropic"\n[book.multipliers.regional]\nfactor = 1.2\nfrom = 2026-01-01\nfrm = 1\n',
     "unknown key 'frm'"),
    ('[book]\nprovider = "anthropic"\n[book.service_tier.batch]\nfactor = "half"\n', "factor must be a decimal"),
    # hostile shapes: an error naming the place, never a traceback or a silently missing price
    ('[book]\nprovider = "anthropic"\n[book.service_tier]\nbatch = []\n', "batch: needs a factor"),
    ('[book]\nprovider = "anthropic"\n[book.multipliers]\nus_geo = [1, 2]\n', "must be a table, got 1"),
    ('[book]\nprovider = "anthropic"\n[book.multipliers]\nus_geo = [{factor = 1}, {factor = 2}]\n',
     "two entries start on the same date"),
    ('[[model]]\nid = "claude-opus-4-8"\nfast = "yes"\n', "write it as [[model.fast]]"),
    ('[[model]]\nid = "claude-opus-4-8"\nlong_context = [5]\n', "must be a table, got 5"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = "soon"\ninput = 1\noutput = 1\n',
     "from must be a date"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-01-01\ninput = 1\n', "needs at least input and output"),
])
def test_invalid_dated_facts_name_the_place(tmp_path, text, message):
    with pytest.raises(PriceBookError) as e:
        load_price_book([_overlay(tmp_path, text)])
    assert message in str(e.value)


@pytest.mark.parametrize("text, message", [
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-05-28\nuntil = 2026-05-01\ninput = 10\n'
     'output = 50\n', "model claude-opus-4-8 fast #1: until must be after its from"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\ninput = 10\noutput = 50\n',
     "model claude-opus-4-8 fast #1: needs `from` (the UTC date it starts)"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.fast]]\nfrom = 2026-05-28\ninput = 10\n',
     "model claude-opus-4-8 fast #1: needs at least input and output rates"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.long_context]]\nfrom = 2026-01-01\ninput = 1\noutput = 1\n',
     "model claude-opus-4-8 long_context #1: threshold must be a positive whole number of prompt tokens"),
    ('[[model]]\nid = "claude-opus-4-8"\n[[model.period]]\nfrom = 2026-05-28\ninput = 10\noutput = 1\n'
     '[model.period.fast]\nuntil = 2026-05-01\ninput = 10\noutput = 1\n',
     "model claude-opus-4-8 (from 2026-05-28) fast: until must be after its from"),
])
def test_prices_check_names_the_place_once(tmp_path, text, message):
    """`prices check` said "model claude-opus-4-8 fast #1: fast: until must be after its from": the
    place already names the window, the message does not repeat it."""
    path = _overlay(tmp_path, text)
    r = _check(path)
    assert r.exit_code == 2 and r.output == f"llm-cost: error: {path}: {message}\n"



# ---------------------------------------------------------------------------------------------
# What a pre-aggregated source cannot say

H55, S45 = "claude-haiku-5-5", "claude-sonnet-4-5-20250929"


def _bucket_row(model, when, window, n=10):
    return dict(timestamp=when, model=model, context_window=window, requests=n, input_tokens=500_000)


def test_bucket_spanning_a_threshold_is_priced_at_base_and_noted(tmp_path):
    """Haiku 5.5 bills a request over 100K prompt tokens at 5x; a `0-200k` row of 10 requests cannot
    say whether any crossed 100K: 500,000 x $0.10 / 1M = $0.05 each (base), and a note counts them."""
    rep = _priced(tmp_path, [_bucket_row(H55, "2026-10-10T00:00:00Z", "0-200k"),
                             _bucket_row(H55, "2026-10-11T00:00:00Z", "0-200k"),
                             _bucket_row(H55, "2026-10-12T00:00:00Z", "≤ 200k"),
                             _bucket_row(H55, "2026-10-13T00:00:00Z", "200k-1m"),   # all over: 500,000 x $0.50
                             _bucket_row(S45, "2025-10-15T00:00:00Z", "0-200k")])   # 200K threshold: all base
    assert rep.accounting.priced == 5
    assert rep.totals["cost"] == D("0.05") * 3 + D("0.25") + D("1.5")  # Sonnet 4.5: 500,000 x $3 / 1M
    assert [n for n in rep.notes if "cannot show" in n] == [
        "2 pre-aggregated rows of claude-haiku-5-5 in context window 0-200k cannot show whether a request crossed "
        "the model's long-context threshold: priced at base rates (a lower bound)",
        "1 pre-aggregated row of claude-haiku-5-5 in context window ≤ 200k cannot show whether a request crossed "
        "the model's long-context threshold: priced at base rates (a lower bound)"]


def test_bucket_inside_one_tier_needs_no_note(tmp_path):
    rep = _priced(tmp_path, [_bucket_row(S45, "2025-10-15T00:00:00Z", "0-200k"),
                             _bucket_row(H55, "2026-10-13T00:00:00Z", ">100k")])
    assert rep.totals["cost"] == D("1.5") + D("0.25")
    assert not [n for n in rep.notes if "cannot show" in n]


# ---------------------------------------------------------------------------------------------
# Bedrock and Vertex endpoints: only global is global

@pytest.mark.parametrize("model, platform, scope, cost", [
    # Opus 4.5 $5/MTok input; a regional endpoint x1.1 (4.5 and later)
    ("anthropic.claude-opus-4-5-20251101-v1:0", "", "", D("5.5")),              # in-region, bare model id
    ("arn:aws:bedrock:us-east-1::foundation-model/anthropic.claude-opus-4-5-20251101-v1:0", "", "", D("5.5")),
    ("bedrock/anthropic.claude-opus-4-5-20251101-v1:0", "", "", D("5.5")),      # LiteLLM's route
    ("eu.anthropic.claude-opus-4-5-20251101-v1:0", "", "", D("5.5")),
    ("global.anthropic.claude-opus-4-5-20251101-v1:0", "", "", D("5")),         # the one global profile
    ("claude-opus-4-5@20251101", "vertex", "regional", D("5.5")),               # a regional Vertex location
    ("claude-opus-4-5@20251101", "vertex", "global", D("5")),
    ("projects/p/locations/europe-west1/publishers/anthropic/models/claude-opus-4-5@20251101:rawPredict",
     "", "", D("5.5")),
    ("projects/p/locations/global/publishers/anthropic/models/claude-opus-4-5@20251101:rawPredict", "", "", D("5")),
    ("claude-opus-4-5-20251101", "", "", D("5")),                               # the Claude API: global
    # Claude 3.5 Sonnet $3: no regional premium before the 4.5 generation
    ("anthropic.claude-3-5-sonnet-20241022-v2:0", "", "", D("3")),
])
def test_regional_endpoints(tmp_path, model, platform, scope, cost):
    assert _cost(tmp_path, timestamp="2026-01-15T00:00:00Z", model=model, platform=platform, endpoint_scope=scope,
                 input_tokens=1_000_000) == cost


# ---------------------------------------------------------------------------------------------
# The rule in general: a period with the same rates, from any date, ends or changes no window


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(start=st.dates(dt.date(2025, 6, 1), dt.date(2027, 6, 1)),
       model=st.sampled_from([O46, O48, S4, "claude-sonnet-4-5-20250929", "claude-haiku-5-5", "claude-opus-5-5"]),
       days=st.lists(st.integers(0, 900), min_size=1, max_size=8))
def test_a_same_rate_period_changes_nothing(tmp_path, start, model, days):
    shipped = load_price_book()
    m = shipped.models[model]
    last = m.period_at(dt.datetime.combine(start, dt.time(), dt.UTC)) or m.periods[0]
    rates = "".join(f"{k} = {v}\n" for k, v in vars(last.rates).items() if v is not None)
    over = load_price_book([_overlay(tmp_path, f'[[model]]\nid = "{model}"\n[[model.period]]\nfrom = {start}\n{rates}')])
    for d in days:
        t = dt.datetime(2025, 6, 1, tzinfo=dt.UTC) + dt.timedelta(days=d, hours=d % 24)
        a, b = shipped.models[model], over.models[model]
        assert a.fast_at(t) == b.fast_at(t) and a.long_context_at(t) == b.long_context_at(t), t
        if a.period_at(t) is not None:  # (before the model's first period, the overlay adds a price)
            assert a.period_at(t).rates == b.period_at(t).rates, t
