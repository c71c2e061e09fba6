"""The canonical request schema: the only place its columns and dtypes are spelled.

Every dialect normalizes to these columns; every later stage relies on them.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl

# Money: exact decimals. 12 fractional digits hold a per-token rate exactly ($3.75/MTok is
# 0.00000375 $/token; the smallest published rate, $0.01/MTok with batch and geo multipliers, is
# 0.0000000055 $/token), and a product token_count x rate keeps scale 12 with no rounding.
MONEY = pl.Decimal(38, 12)
# Presentation: money is rounded half-even to this many places only when written for people.
DISPLAY_PLACES = 2
ROUNDING = "half-even"


@dataclass(frozen=True)
class Component:
    """A billable quantity in a request: a token class or a server-tool use."""

    column: str  # count column in the canonical schema
    rate: str  # rate key in the price book
    per: int  # the price book's rate is USD per this many units


TOKEN_COMPONENTS: tuple[Component, ...] = (
    Component("input_tokens", "input", 1_000_000),
    Component("cache_write_5m_tokens", "cache_write_5m", 1_000_000),
    Component("cache_write_1h_tokens", "cache_write_1h", 1_000_000),
    Component("cache_read_tokens", "cache_read", 1_000_000),
    Component("output_tokens", "output", 1_000_000),
)
TOOL_COMPONENTS: tuple[Component, ...] = (
    Component("web_search_requests", "web_search", 1_000),
    Component("web_fetch_requests", "web_fetch", 1_000),
)
COMPONENTS = TOKEN_COMPONENTS + TOOL_COMPONENTS
COUNT_COLUMNS = tuple(c.column for c in COMPONENTS)
# Tokens that make up a request's prompt; they decide the long-context tier (output never does).
PROMPT_COLUMNS = ("input_tokens", "cache_write_5m_tokens", "cache_write_1h_tokens", "cache_read_tokens")

# Columns of a normalized request frame, in order. Dimensions (workspace, api_key, ...) follow.
CANONICAL: dict[str, pl.DataType] = {
    "request_id": pl.String(),
    "timestamp": pl.Datetime("us", "UTC"),
    "source": pl.String(),
    "source_file": pl.String(),
    "source_row": pl.Int64(),
    "platform": pl.String(),
    "endpoint_scope": pl.String(),
    "model_raw": pl.String(),
    "service_tier": pl.String(),
    "speed": pl.String(),
    "inference_geo": pl.String(),
    "context_window": pl.String(),
    "requests": pl.Int64(),
    **{c: pl.Int64() for c in COUNT_COLUMNS},
    "reported_cost": MONEY,
}

# Well-known dimension columns: kept when present, always as strings.
KNOWN_DIMENSIONS = ("workspace", "api_key", "project", "user", "session")

# `block`: Claude's 5-hour usage windows (tagging.block_starts), a time bucket that depends on the
# requests before it.
TIME_BUCKETS = ("hour", "day", "week", "month", "quarter", "year", "block")
# `--by` keys that exist only after pricing (derived from the rate keys), and canonical columns `--by`
# takes as they are.
DERIVED_KEYS = ("model", "family", "provider", "discount_type", "context_tier", "price_period", "component")
RAW_KEYS = ("model_raw", "platform", "service_tier", "speed", "inference_geo", "endpoint_scope", "source",
            "source_file")
BUILTIN_KEYS = (*TIME_BUCKETS, *RAW_KEYS, *DERIVED_KEYS)
# Names a dimension of a log may not take: the built-in `--by` keys and the columns reports and the
# store add. A log's `provider` column kept under that name would shadow the report's provider (or
# break the report), silently; it is read as `log_provider` instead, with a note.
RESERVED = frozenset((*BUILTIN_KEYS, *CANONICAL, *("cost_" + c.rate for c in COMPONENTS), "cost", "list_cost",
                      "savings", "quantity", "price_book", "unpriced_reason",
                      "other_rows"))  # (view.OTHER_ROWS: the --top rest row's marker)


def dimension_name(name: str) -> str:
    """The name a log's dimension is reported under: its own, unless that is a RESERVED name."""
    return f"log_{name}" if name in RESERVED else name


def dimension_names(names) -> dict[str, str]:
    """Each of a file's dimensions -> the name it is reported under (dimension_name), prefixed again
    while another of the file's columns already has that name (`provider` beside `log_provider`)."""
    names = list(names)
    taken = set(names)
    out = {}
    for n in names:
        new = dimension_name(n)
        while new != n and new in taken:
            new = f"log_{new}"
        taken.add(new)
        out[n] = new
    return out


def renamed_note(where: str, renamed: dict[str, str]) -> str:
    """The note that says which dimensions of a file were renamed (see dimension_names)."""
    pairs = ", ".join(f"{old} -> {new}" for old, new in renamed.items() if old != new)
    return f"{where}: dimensions renamed so as not to shadow a built-in --by key or report column: {pairs}"
SERVICE_TIERS = ("standard", "batch", "priority", "flex")
