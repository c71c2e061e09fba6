"""Second reading of the night's changes (jsonl3: JSON Lines read before their search for late keys;
ingest2: month summaries that skip all-zero money and sum in 64 bits; cc3: the BOM strip behind
`starts_with`). Each test is an input where a command's answer differed from the one it must give;
each failed before its fix."""

from __future__ import annotations

import json
from pathlib import Path

from analyzer import pipeline, store, writers


def _json(rep) -> dict:
    return json.loads(writers.render(rep, "json"))


# ----------------------------------------------------------------------------------------------
# report --store must say what report of the same logs says, accounting included


def test_the_reported_spend_of_unpriced_rows_is_in_a_store_report_as_in_a_log_report(tmp_path: Path):
    # An unknown model's reported cost is kept out of the reported column and shown on its
    # `unpriced:` line (accounting.unpriced_reported_cost). A store report lost it: its stored rows
    # carry the reported cost, but the store's accounting never summed the unpriced ones.
    night = tmp_path / "night.csv"
    night.write_text("request_id,timestamp,model,input_tokens,output_tokens,reported_cost\n"
                     "a,2026-10-10T01:00:00Z,claude-nope,10,1,0.25\n"
                     "b,2026-10-10T02:00:00Z,claude-nope,10,1,-0.5\n"
                     "c,2026-10-10T03:00:00Z,claude-nope,10,1,\n"
                     "d,2026-10-11T03:00:00Z,claude-other,10,1,\n"
                     "e,2026-10-11T04:00:00Z,claude-sonnet-4-5,10,1,0.125\n")
    st = tmp_path / "st"
    store.ingest([str(night)], str(st))
    opts = pipeline.Options(quarantine=str(tmp_path / "q.jsonl"))
    for by in (["month"], ["day", "model"]):
        logs = pipeline.analyze([str(night)], by, opts)
        stored = store.report(str(st), by)
        assert logs.accounting.unpriced_reported == {"claude-nope": pipeline.Decimal("-0.25")}
        assert stored.accounting.unpriced_reported == logs.accounting.unpriced_reported
        want, got = _json(logs), _json(stored)
        assert got["accounting"]["unpriced_reported_cost"] == want["accounting"]["unpriced_reported_cost"]
        assert got["rows"] == want["rows"] and got["totals"] == want["totals"]
        assert "reported" in writers.render(stored, "table").split("unpriced:")[1].splitlines()[0]
