"""`llm-cost prices import`: another project's price data -> an overlay TOML for the models the book lacks.

Two sources are read (their real formats, see fixtures/prices/import/SOURCES.md):
- LiteLLM's `model_prices_and_context_window.json`: {model name: {input_cost_per_token, ...}}, USD per
  token, no dates;
- pydantic/genai-prices: a provider file `prices/providers/<id>.yml` (needs PyYAML) or the compiled
  `prices/data.json` (a list of providers), USD per million tokens, price changes dated by a
  `constraint.start_date`.

Numbers are read as Decimal from the file's text (never through a binary float), so 2.1875e-06 per
token is exactly 2.1875 per million. What cannot be said exactly is left out and counted: a model the
book already prices, a non-token price (images, audio seconds), time-of-day or other conditional
prices, prefix matches. The overlay's periods are confidence "estimate", name their source, and carry
no date the source does not give: an undated price starts at UNDATED (1970-01-01), which the note says
means "no start known". The overlay is then validated like any other (`pricebook.check`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from ..errors import PriceBookError
from . import MAX_RATE

UNDATED = dt.date(1970, 1, 1)
MTOK = Decimal(1_000_000)

# LiteLLM per-token keys -> book rate keys (per million after x 10^6)
_LITELLM_RATES = {
    "input_cost_per_token": "input",
    "cache_creation_input_token_cost": "cache_write_5m",
    "cache_creation_input_token_cost_above_1hr": "cache_write_1h",
    "cache_read_input_token_cost": "cache_read",
    "output_cost_per_token": "output",
}
_LITELLM_TEXT_MODES = {"chat", "completion", "responses"}
_LITELLM_TIER = re.compile(r"^(?P<base>.+)_above_(?P<k>\d+)k_tokens$")
# genai-prices per-MTok keys -> book rate keys
_GENAI_RATES = {
    "input_mtok": "input",
    "cache_write_mtok": "cache_write_5m",
    "cache_write_1h_mtok": "cache_write_1h",
    "cache_read_mtok": "cache_read",
    "output_mtok": "output",
}
RATE_ORDER = ("input", "cache_write_5m", "cache_write_1h", "cache_read", "output")


@dataclass
class Imported:
    """One model of the overlay."""

    id: str
    provider: str
    name: str
    aliases: list[str]
    periods: list[tuple[dt.date, dict[str, Decimal], tuple[int, dict[str, Decimal]] | None]]
    note: str  # said on every period
    first_note: str = ""  # said on the first period only (its start)


@dataclass
class ImportResult:
    kind: str  # "LiteLLM" | "genai-prices"
    toml: str
    models: list[Imported]
    skipped: dict[str, list[str]] = field(default_factory=dict)  # reason -> model names

    def summary(self) -> str:
        parts = [f"{len(self.models)} model(s) imported from {self.kind}"]
        for reason, names in sorted(self.skipped.items()):
            shown = ", ".join(sorted(names)[:3]) + (", ..." if len(names) > 3 else "")
            parts.append(f"{len(names)} skipped: {reason} ({shown})")
        return "; ".join(parts)


def _plain(d: Decimal) -> str:
    """A Decimal as a TOML number without exponent (2.1875, 0.0375, 8)."""
    s = format(d.normalize(), "f")
    return s


def _skip(skipped: dict[str, list[str]], reason: str, name: str) -> None:
    skipped.setdefault(reason, []).append(name)


def _read(path: str) -> tuple[bytes, str]:
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise PriceBookError(f"{path}: cannot read ({e.strerror})") from None
    return raw, hashlib.sha256(raw).hexdigest()[:12]


def _json(path: str, raw: bytes):
    try:
        return json.loads(raw.decode("utf-8"), parse_float=Decimal)
    except (UnicodeDecodeError, ValueError) as e:
        raise PriceBookError(f"{path}: not JSON ({e})") from None
    except RecursionError:
        raise PriceBookError(f"{path}: nested too deeply to be a price file") from None


def _yaml(path: str, raw: bytes):
    try:
        import yaml
    except ImportError:
        raise PriceBookError(f"{path}: reading a genai-prices YAML file needs PyYAML (pip install pyyaml); "
                             "or import genai-prices' compiled prices/data.json") from None

    class _DecimalLoader(yaml.SafeLoader):
        pass

    # floats as written, exactly (0.075 stays 0.075), never through a binary float
    _DecimalLoader.add_constructor("tag:yaml.org,2002:float",
                                   lambda loader, node: Decimal(loader.construct_scalar(node).replace("_", "")))
    try:
        return yaml.load(raw.decode("utf-8"), Loader=_DecimalLoader)  # noqa: S506 (a SafeLoader subclass)
    except (UnicodeDecodeError, yaml.YAMLError) as e:
        raise PriceBookError(f"{path}: not YAML ({str(e).splitlines()[0]})") from None
    except RecursionError:
        raise PriceBookError(f"{path}: nested too deeply to be a price file") from None


def _number(v) -> Decimal | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return Decimal(v)
    if isinstance(v, Decimal) and v.is_finite() and v >= 0:
        return v
    return None


# ---------------------------------------------------------------------------------------------
# LiteLLM


def _from_litellm(doc: dict, known, skipped) -> list[Imported]:
    out = []
    for name, entry in doc.items():
        if name == "sample_spec" or not isinstance(entry, dict):
            continue
        mode = entry.get("mode", "chat")
        if mode not in _LITELLM_TEXT_MODES:
            _skip(skipped, f"not priced per token ({mode})", name)
            continue
        if known(name):
            _skip(skipped, "already in the book", name)
            continue
        rates, long_rates, threshold, bad = {}, {}, None, False
        for key, value in entry.items():
            tier = _LITELLM_TIER.match(key)
            base_key = tier.group("base") if tier else key
            if base_key not in _LITELLM_RATES:
                continue
            n = _number(value)
            if n is None:
                bad = True
                break
            if tier:
                t = int(tier.group("k")) * 1000
                if threshold not in (None, t):
                    bad = True  # two thresholds: the book has one long-context tier
                    break
                threshold = t
                long_rates[_LITELLM_RATES[base_key]] = n * MTOK
            else:
                rates[_LITELLM_RATES[base_key]] = n * MTOK
        if bad or "input" not in rates or "output" not in rates:
            _skip(skipped, "no usable input and output price per token", name)
            continue
        long = None
        if threshold is not None:
            long_rates = {**rates, **long_rates}  # a class without a tiered price keeps its base rate
            long = (threshold, long_rates)
        provider = str(entry.get("litellm_provider") or "custom")
        out.append(Imported(name, provider, name, [], [(UNDATED, rates, long)], "",
                            "LiteLLM gives no effective date: from 1970-01-01 means no start known."))
    return out


# ---------------------------------------------------------------------------------------------
# genai-prices


def _genai_rates(prices: dict) -> tuple[dict[str, Decimal], tuple[int, dict[str, Decimal]] | None] | None:
    """Rates and the long-context tier of one genai-prices `prices` table; None if not exact."""
    rates, long_rates, threshold = {}, {}, None
    for key, value in prices.items():
        if key not in _GENAI_RATES:
            continue  # audio, image, per-request prices: no such token class in the book
        if isinstance(value, dict):  # {base, tiers: [{start, price}]}: one prompt-size tier only
            tiers = value.get("tiers")
            base = _number(value.get("base"))
            if base is None or not isinstance(tiers, list) or len(tiers) != 1 or not isinstance(tiers[0], dict):
                return None
            start, price = tiers[0].get("start"), _number(tiers[0].get("price"))
            if not isinstance(start, int) or isinstance(start, bool) or price is None:
                return None
            if threshold not in (None, start):
                return None
            threshold = start
            rates[_GENAI_RATES[key]] = base
            long_rates[_GENAI_RATES[key]] = price
            continue
        n = _number(value)
        if n is None:
            return None
        rates[_GENAI_RATES[key]] = n
    if "input" not in rates or "output" not in rates:
        return None
    long = (threshold, {**rates, **long_rates}) if threshold is not None else None
    return rates, long


def _genai_model(provider: str, m: dict, known, skipped, seen: set[str]) -> Imported | None:
    mid = m.get("id")
    if not isinstance(mid, str) or not mid.strip():
        return None
    match = m.get("match", {})
    equals = [c["equals"] for c in (match.get("or", []) if isinstance(match, dict) else [])
              if isinstance(c, dict) and isinstance(c.get("equals"), str)]
    if isinstance(match, dict) and isinstance(match.get("equals"), str):
        equals.append(match["equals"])
    ids = [mid, *[e for e in equals if e != mid]]
    if any(known(i) for i in ids):
        _skip(skipped, "already in the book", mid)
        return None
    if mid.lower() in seen:
        _skip(skipped, "listed by an earlier provider", f"{provider}/{mid}")
        return None
    prices = m.get("prices")
    variants = prices if isinstance(prices, list) else [{"prices": prices}]
    periods = []
    for v in variants:
        if not isinstance(v, dict) or not isinstance(v.get("prices"), dict):
            _skip(skipped, "prices not in a form llm-cost reads", mid)
            return None
        constraint = v.get("constraint") or {}
        if not isinstance(constraint, dict) or set(constraint) - {"start_date"}:
            _skip(skipped, "conditional prices (time of day, region...)", mid)
            return None
        start = constraint.get("start_date", UNDATED)
        if isinstance(start, str):
            try:
                start = dt.date.fromisoformat(start)
            except ValueError:
                start = None
        if isinstance(start, dt.datetime):
            start = start.date()
        if not isinstance(start, dt.date):
            _skip(skipped, "a start_date that is not a date", mid)
            return None
        got = _genai_rates(v["prices"])
        if got is None:
            _skip(skipped, "no exact input and output price per million tokens", mid)
            return None
        periods.append((start, *got))
    if not periods or len({p[0] for p in periods}) != len(periods):
        _skip(skipped, "prices not in a form llm-cost reads", mid)
        return None
    seen.update(i.lower() for i in ids)
    periods.sort(key=lambda p: p[0])
    undated = "genai-prices gives no start for this price: from 1970-01-01 means no start known." \
        if periods[0][0] == UNDATED else ""
    prefix = "Prefix matches (starts_with) are not exact ids and were not imported." \
        if "starts_with" in json.dumps(match, default=str) else ""
    return Imported(mid, provider, str(m.get("name") or mid), ids[1:], periods, prefix, undated)


def _from_genai(doc, known, skipped) -> list[Imported]:
    providers = doc if isinstance(doc, list) else [doc]
    out, seen = [], set()
    for p in providers:
        if not isinstance(p, dict) or not isinstance(p.get("models"), list):
            continue
        pid = str(p.get("id") or "custom")
        for m in p["models"]:
            if isinstance(m, dict):
                got = _genai_model(pid, m, known, skipped, seen)
                if got is not None:
                    out.append(got)
    return out


# ---------------------------------------------------------------------------------------------


def _kind(path: str, raw: bytes):
    if path.lower().endswith((".yml", ".yaml")):
        doc = _yaml(path, raw)
        if isinstance(doc, dict) and isinstance(doc.get("models"), list):
            return "genai-prices", doc
        raise PriceBookError(f"{path}: not a genai-prices provider file (no `models:` list)")
    doc = _json(path, raw)
    if isinstance(doc, list) and doc and all(isinstance(p, dict) and "models" in p for p in doc):
        return "genai-prices", doc
    if isinstance(doc, dict) and any(isinstance(v, dict) and ("input_cost_per_token" in v or "litellm_provider" in v)
                                     for v in doc.values()):
        return "LiteLLM", doc
    raise PriceBookError(f"{path}: neither a LiteLLM model_prices_and_context_window.json nor a genai-prices "
                         "data file (prices/data.json or prices/providers/<id>.yml)")


def _q(s: str) -> str:
    return json.dumps(s, ensure_ascii=False)  # a JSON string is a TOML basic string


def _render(path: str, digest: str, kind: str, models: list[Imported]) -> str:
    src = Path(path).name
    lines = [f"# Overlay generated by `llm-cost prices import` from {kind} {src} (sha256 {digest}).",
             "# Every price is confidence \"estimate\": check it against the provider's own page before",
             "# trusting a total. A period from 1970-01-01 has no known start. Models the shipped book",
             "# already prices were left out. Batch is off (batch rows stay unpriced): the source gives",
             "# no batch multiplier llm-cost can apply per model."]
    for m in models:
        lines += ["", "[[model]]", f"id = {_q(m.id)}", f"provider = {_q(m.provider)}", f"name = {_q(m.name)}",
                  "aliases = [" + ", ".join(_q(a) for a in m.aliases) + "]", "batch = false"]
        for i, (start, rates, _) in enumerate(m.periods):
            lines += ["", "  [[model.period]]", f"  from = {start.isoformat()}"]
            lines += [f"  {k} = {_plain(rates[k])}" for k in RATE_ORDER if k in rates]
            lines += [f"  source = {_q(f'{kind}: {src}')}", "  confidence = \"estimate\""]
            note = " ".join(n for n in (m.first_note if i == 0 else "", m.note) if n)
            if note:
                lines.append(f"  note = {_q(note)}")
        # A tier is a long-context window dated like the price it came with: from that price's start
        # until the next price's (windows are facts of their own in the book: FORMAT.md).
        for i, (start, _, long) in enumerate(m.periods):
            if long is None:
                continue
            threshold, lr = long
            lines += ["", "  [[model.long_context]]", f"  threshold = {threshold}", f"  from = {start.isoformat()}"]
            if i + 1 < len(m.periods):
                lines.append(f"  until = {m.periods[i + 1][0].isoformat()}")
            lines += [f"  {k} = {_plain(lr[k])}" for k in RATE_ORDER if k in lr]
            lines += [f"  source = {_q(f'{kind}: {src}')}", "  confidence = \"estimate\""]
    return "\n".join(lines) + "\n"


def import_prices(path: str, book) -> ImportResult:
    """Read a LiteLLM or genai-prices file and render an overlay of the models `book` lacks, validated
    on top of `book`'s files like any `--prices` overlay (PriceBookError if it would not load)."""
    import tempfile

    from ..models import Resolver
    from . import load_price_book

    raw, digest = _read(path)
    kind, doc = _kind(path, raw)
    resolver = Resolver(book)

    def known(model_id: str) -> bool:
        return resolver.resolve(model_id)[0] is not None

    skipped: dict[str, list[str]] = {}
    models = _from_litellm(doc, known, skipped) if kind == "LiteLLM" else _from_genai(doc, known, skipped)
    plausible = []
    for m in models:  # a rate the book would refuse (a unit mix-up upstream) skips its model, not the file
        rates = [r for _, base, long in m.periods for r in (*base.values(), *(long[1].values() if long else ()))]
        if any(r > MAX_RATE for r in rates):
            _skip(skipped, f"a rate over {MAX_RATE:,} USD per million tokens", m.id)
        else:
            plausible.append(m)
    models = plausible
    claimed: set[str] = set()
    for m in models:  # an alias two imported models claim would fail the overlay: keep it on the first
        m.aliases = [a for a in m.aliases if a.lower() not in claimed and a.lower() != m.id.lower()]
        claimed.update([m.id.lower(), *(a.lower() for a in m.aliases)])
    toml = _render(path, digest, kind, models)
    with tempfile.TemporaryDirectory() as tmp:
        check = Path(tmp) / "imported.toml"
        check.write_text(toml, encoding="utf-8")
        try:
            load_price_book([*book.overlays, str(check)])
        except PriceBookError as e:
            raise PriceBookError(f"{path}: the imported overlay does not validate: {e}") from None
    return ImportResult(kind, toml, models, skipped)
