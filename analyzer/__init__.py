"""llm-cost: exact cost reports from LLM API usage logs.

    from analyzer import analyze, price_requests, Options, load_price_book
    report = analyze(["logs/"], by=["month", "model"], opts=Options(tz="Europe/Berlin"))
    report.rows          # Polars DataFrame, Decimal money columns
    report.totals        # dict of grand totals
    report.accounting    # rows read = priced + unpriced + duplicates + quarantined (+ filtered out)

Submodules are imported on first use, so importing the package (and `llm-cost --help`) stays fast.
"""

from __future__ import annotations

import importlib

__all__ = ["analyze", "price_requests", "Options", "Report", "Accounting", "load_price_book", "AnalyzerError"]

_LAZY = {
    "analyze": ("pipeline", "analyze"),
    "price_requests": ("pipeline", "price_requests"),
    "Options": ("pipeline", "Options"),
    "Report": ("pipeline", "Report"),
    "Accounting": ("pipeline", "Accounting"),
    "load_price_book": ("pricebook", "load_price_book"),
    "AnalyzerError": ("errors", "AnalyzerError"),
}
# Nightly checks (docs/check.md): check(paths, "budgets.toml", by=["workspace"]) -> alerts.
_LAZY |= {"check": ("checks", "run"), "load_budgets": ("checks", "load_budgets")}
__all__ += ["check", "load_budgets"]


def __getattr__(name: str):
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(f".{module}", __name__), attr)
    raise AttributeError(f"module 'analyzer' has no attribute {name!r}")
