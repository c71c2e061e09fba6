"""Detection of the export/report dialects: each of their fixtures is detected as its own dialect, and
no fixture of another dialect is taken for one of them."""

from __future__ import annotations

import pytest

from analyzer.errors import AnalyzerError

from .exports_util import FIXTURES, detect

MINE = ("anthropic-usage-report", "anthropic-console-csv", "openai", "openai-usage", "litellm-spendlogs",
        "claude-code-stream", "claude-code-analytics")  # (and the two Claude Code outputs of issue 21)
FILES = sorted(p for p in FIXTURES.rglob("*") if p.is_file() and not p.name.startswith("."))


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(FIXTURES)))
def test_each_fixture_is_its_own_dialect(path):
    owner = path.relative_to(FIXTURES).parts[0]
    try:
        found = detect(path)
    except AnalyzerError:
        found = None  # a deliberately unreadable fixture of another dialect
    if owner in MINE:
        assert found == owner
    else:
        assert found not in MINE


def test_cost_reports_are_not_read_as_usage():
    """A cost report has the usage report's envelope; read as usage it would be $0, silently."""
    from analyzer import dialects
    from analyzer.errors import DialectError
    from analyzer.sources import open_source
    from tests.conftest import ROOT

    for name in ("admin_analytics_cost.json", "admin_cost_report.json"):
        with pytest.raises(DialectError, match="not a usage log llm-cost reads.*audit --invoice"):
            dialects.detect(open_source(str(ROOT / "fixtures" / "invoices" / name)))
