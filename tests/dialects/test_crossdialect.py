"""The same requests in every format that can express them: the same total, to the last digit."""

from __future__ import annotations

import pytest

from analyzer import analyze
from tests.dialects.crossdialect import REQUESTS, WRITERS


def _total(path):
    rep = analyze([str(path)], ["model"])
    assert rep.accounting.balanced and rep.accounting.quarantined == 0 and rep.accounting.unpriced == 0
    return rep.totals["cost"], rep.totals["requests"]


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_same_requests_same_total(name, tmp_path):
    write, accepts = WRITERS[name]
    subset = [r for r in REQUESTS if accepts(r)]
    (tmp_path / "ref").mkdir()
    (tmp_path / "fmt").mkdir()
    expected = _total(WRITERS["canonical-csv"][0](subset, tmp_path / "ref"))
    got = _total(write(subset, tmp_path / "fmt"))
    assert got == expected
    assert got[1] == len(subset) >= 15
