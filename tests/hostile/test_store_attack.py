"""Attacks on the Delta Lake store (issue 19, issue 13 §1-§3): each test is the smallest input that
made the store write outside itself, delete what it should keep, lie in `store status`, or stop
working for good. Each failed before its fix in analyzer/store.py."""

from __future__ import annotations

import json
import os
import shutil
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from analyzer import pipeline, store, store_legacy, writers

from ..conftest import ROOT
from ..test_store import json_report, log, req, run, tree


def _store(tmp_path: Path, *nights: list[dict]) -> Path:
    st = tmp_path / "store"
    for n, rows in enumerate(nights):
        store.ingest([str(log(tmp_path / f"n{n}" / "a.csv", rows))], str(st))
    return st


# ----------------------------------------------------------------------------------------------
# Writing outside the store: the table logs are directories of the store too


@pytest.mark.parametrize("log_dir", ["_delta_log", "_llm_cost/files/_delta_log"])
def test_a_symlinked_delta_log_is_refused_and_nothing_is_written_through_it(tmp_path, log_dir):
    st = _store(tmp_path, [req("a")])
    elsewhere = tmp_path / "elsewhere"
    shutil.move(st / log_dir, elsewhere)
    (st / log_dir).symlink_to(elsewhere)
    before = sorted(os.listdir(elsewhere))
    for args in (["ingest", log(tmp_path / "n9" / "b.csv", [req("b")]), "--store", st], ["store", "compact", st],
                 ["reprice", "--store", st], ["report", "--store", st], ["store", "status", st]):
        r = run(*args)
        assert r.exit_code == 2 and "damaged store" in r.stderr and "symlink" in r.stderr, (args, r.output)
    assert sorted(os.listdir(elsewhere)) == before  # no commit landed outside the store


# ----------------------------------------------------------------------------------------------
# A lost commit: the files table remembers the version the rows log no longer has


def test_a_lost_last_commit_is_damage_not_consistent_and_compact_keeps_its_data(tmp_path):
    st = _store(tmp_path, [req("a")], [req("b", "2026-11-10")])
    lost = next((st / "_llm_month=2026-11").glob("*.parquet"))
    (st / "_delta_log" / "00000000000000000001.json").unlink()  # a lost log entry (disk, a bad copy)
    r = run("store", "status", st)
    assert r.exit_code == 2 and "damaged store" in r.stderr and "version 1" in r.stderr, r.output
    for args in (["report", "--store", st], ["store", "compact", st, "--retention-days", "0"],
                 ["ingest", log(tmp_path / "n9" / "c.csv", [req("c")]), "--store", st]):
        r = run(*args)
        assert r.exit_code == 2 and "damaged store" in r.stderr, (args, r.output)
    assert lost.exists()  # the data of the lost commit is not deleted as "never committed"


@pytest.mark.parametrize("value", ["2026-11' OR '1'='1", "../x", "2026-13", ""])
def test_a_partition_value_not_of_our_making_is_damage_in_status_too(tmp_path, value):
    st = _store(tmp_path, [req("a")], [req("b", "2026-11-10")])
    commit = st / "_delta_log" / "00000000000000000001.json"
    text = commit.read_text()
    assert '"partitionValues":{"_llm_month":"2026-11"}' in text
    commit.write_text(text.replace('"partitionValues":{"_llm_month":"2026-11"}',
                                   '"partitionValues":{"_llm_month":' + json.dumps(value) + "}"))
    snapshot = tree(st)
    r = run("store", "status", st)
    assert r.exit_code != 0 and "consistent" not in r.stdout.splitlines()[-1:], r.output
    assert "not a month" in r.output
    for args in (["report", "--store", st], ["reprice", "--store", st], ["store", "compact", st]):
        r = run(*args)
        assert r.exit_code == 2 and "damaged store" in r.stderr and "Traceback" not in r.output, (args, r.output)
    assert tree(st) == snapshot


# ----------------------------------------------------------------------------------------------
# A first ingest killed after writing its data file, before its first commit


def test_a_first_ingest_killed_before_its_commit_leaves_a_store_not_a_foreign_directory(tmp_path):
    st = tmp_path / "store"
    (st / "_llm_cost").mkdir(parents=True)
    (st / "_llm_cost" / "lock").write_text("")
    orphan = st / "_llm_month=2026-10" / "part-00000-0b2c4c1e-5d5e-4c57-9c38-2f1f1a7f7d11-c000.zstd.parquet"
    orphan.parent.mkdir()
    orphan.write_bytes(b"half a part")
    r = run("ingest", log(tmp_path / "in" / "a.csv", [req("a")]), "--store", st)
    assert r.exit_code == 0, r.output
    assert store.report(str(st), ["model"]).totals["cost"] == Decimal("0.0045")
    assert store.status(str(st))["uncommitted"] == ["_llm_month=2026-10/" + orphan.name]
    store.compact(str(st))
    assert not orphan.exists()
    # A month directory holding anything else is not ours: the directory is still refused.
    d = tmp_path / "d"
    (d / "_llm_month=2026-10").mkdir(parents=True)
    (d / "_llm_month=2026-10" / "notes.txt").write_text("mine")
    r = run("ingest", log(tmp_path / "in" / "a.csv", [req("a")]), "--store", d)
    assert r.exit_code == 2 and "not an llm-cost store" in r.stderr
    assert tree(d) == {"_llm_month=2026-10/notes.txt": b"mine"}


# ----------------------------------------------------------------------------------------------
# Column names: Delta compares them ignoring case


@pytest.mark.parametrize("name", ["Cost", "LIST_COST", "Model", "_LLM_MONTH_x", "Request_ID"])
def test_a_log_column_equal_to_a_stored_column_but_for_case_is_one_clear_line(tmp_path, name):
    st = tmp_path / "store"
    df = pl.DataFrame({"request_id": ["a"], "timestamp": ["2026-10-10T10:00:00Z"], "model": ["claude-sonnet-4-5"],
                       "input_tokens": [1000], "output_tokens": [100], name: ["x"]})
    df.write_csv(tmp_path / "a.csv")
    r = run("ingest", tmp_path / "a.csv", "--store", st)
    if r.exit_code == 0:  # read as something else (or dropped) by the pipeline: the store reports as the log
        assert store.report(str(st), ["model"]).totals == pipeline.analyze([str(tmp_path / "a.csv")], ["model"]).totals
        return
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert f"column {name!r}" in r.stderr and "a.csv" in r.stderr and "ignor" in r.stderr, r.stderr


def test_dimensions_differing_only_in_case_across_nights_are_one_clear_line(tmp_path):
    st = tmp_path / "store"
    one = tmp_path / "1.csv"
    pl.DataFrame({"request_id": ["a"], "timestamp": ["2026-10-10T10:00:00Z"], "model": ["claude-sonnet-4-5"],
                  "input_tokens": [1000], "output_tokens": [100], "Team": ["A"]}).write_csv(one)
    two = tmp_path / "2.csv"
    pl.DataFrame({"request_id": ["b"], "timestamp": ["2026-10-11T10:00:00Z"], "model": ["claude-sonnet-4-5"],
                  "input_tokens": [1000], "output_tokens": [100], "team": ["B"]}).write_csv(two)
    assert run("ingest", one, "--store", st).exit_code == 0
    r = run("ingest", two, "--store", st)
    assert r.exit_code == 2 and "column 'team'" in r.stderr and "'Team'" in r.stderr, r.output
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 1 and rep.accounting.balanced and store.status(str(st))["consistent"]


# ----------------------------------------------------------------------------------------------
# Time travel: a version that is gone is not "damage"


def test_a_version_vacuumed_by_compact_says_so_and_a_huge_version_is_no_version(tmp_path):
    st = _store(tmp_path, [req("a")])
    log(tmp_path / "n0" / "a.csv", [req("a", out=200)])  # the file changed: version 1 replaces its rows
    store.ingest([str(tmp_path / "n0" / "a.csv")], str(st))
    store.compact(str(st), retention_days=0)
    r = run("report", "--store", st, "--version", "0")
    assert r.exit_code == 2 and "damaged" not in r.stderr and "compact" in r.stderr, r.output
    assert store.status(str(st))["consistent"]
    r = run("report", "--store", st, "--version", "99999999999999999999")
    assert r.exit_code == 2 and "no version 99999999999999999999" in r.stderr and "damaged" not in r.stderr, r.output


# ----------------------------------------------------------------------------------------------
# store upgrade: interrupted, or over a damaged part


def test_an_upgrade_killed_during_its_switch_can_be_run_again(tmp_path, monkeypatch):
    st = tmp_path / "old"
    shutil.copytree(ROOT / "fixtures" / "store-v1", st)
    expected = store._comparable(writers.render(store_legacy.report(str(st), ["month", "model"]), "json")
                                 .replace(str(st), "STORE"))
    real, moved = os.rename, []

    def dies_on_the_second(a, b):
        if moved:
            raise KeyboardInterrupt  # kill -9 between two renames of the switch
        moved.append(a)
        real(a, b)

    with monkeypatch.context() as m:
        m.setattr(os, "rename", dies_on_the_second)
        with pytest.raises(KeyboardInterrupt):
            store.upgrade(str(st))
    assert not (st / "_delta_log").exists()
    r = run("store", "upgrade", st)
    assert r.exit_code == 0, r.output
    assert store._comparable(json_report(st)) == expected
    assert store.status(str(st))["consistent"] and not (st / "_llm_cost.upgrade").exists()


def test_an_upgrade_over_a_truncated_part_names_it_and_changes_nothing(tmp_path):
    st = tmp_path / "old"
    shutil.copytree(ROOT / "fixtures" / "store-v1", st)
    part = sorted((st / "rows").rglob("*.parquet"))[0]
    part.write_bytes(part.read_bytes()[:100])
    r = run("store", "upgrade", st)
    assert r.exit_code == 2 and r.stderr.startswith("llm-cost: error: damaged store") and "Traceback" not in r.output
    assert not (st / "_delta_log").exists()


# ----------------------------------------------------------------------------------------------
# A changed file whose new bytes are another file's


def test_a_file_changed_to_the_content_of_another_keeps_none_of_its_old_rows(tmp_path):
    st = tmp_path / "store"
    a = log(tmp_path / "in" / "a.csv", [req("a")])
    b = log(tmp_path / "in" / "b.csv", [req("b")])
    store.ingest([str(a), str(b)], str(st))
    shutil.copy(b, a)  # re-exported: a.csv now holds what b.csv holds; request a is gone from every log
    result = store.ingest([str(a), str(b)], str(st))
    assert result.files[0].status.startswith("replaced") and result.files[1].status == "unchanged"
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 1 and rep.totals["cost"] == Decimal("0.0045") and rep.accounting.balanced
    assert store.status(str(st))["consistent"]
    # a.csv is now a copy, not recorded (as any copy): when b.csv changes, a.csv's rows are its own.
    assert [f.status for f in store.ingest([str(a), str(b)], str(st)).files] == [f"same content as {b}", "unchanged"]
    log(b, [req("c")])
    assert [f.status for f in store.ingest([str(a), str(b)], str(st)).files] == ["ingested", "replaced"]
    assert store.report(str(st), ["model"]).totals["requests"] == 2  # b (in a.csv) and c


def test_a_run_killed_after_forgetting_a_changed_file_is_replayed(tmp_path, monkeypatch):
    st = tmp_path / "store"
    a = log(tmp_path / "in" / "a.csv", [req("a")])
    b = log(tmp_path / "in" / "b.csv", [req("b")])
    store.ingest([str(a), str(b)], str(st))
    shutil.copy(b, a)

    def die(*args, **kwargs):
        raise KeyboardInterrupt  # killed right after the commit that removed a.csv's old rows

    with monkeypatch.context() as m:
        m.setattr(store, "_write_files", die)
        with pytest.raises(KeyboardInterrupt):
            store.ingest([str(a)], str(st))
    rep = store.report(str(st), ["model"])
    assert rep.totals["requests"] == 1 and rep.accounting.rows_read == 1 and rep.accounting.balanced
    assert store.status(str(st))["consistent"]


# ----------------------------------------------------------------------------------------------
# Timestamps a month partition cannot hold; a store without rows yet


def test_a_year_past_9999_is_one_line_at_ingest_not_a_store_every_command_calls_damaged(tmp_path):
    st = _store(tmp_path, [req("a")])
    late = tmp_path / "late.csv"
    late.write_text("request_id,timestamp,model,input_tokens,output_tokens\n"
                    "z,+12000-01-01T00:00:00Z,claude-sonnet-4-5,1000,100\n")
    r = run("ingest", late, "--store", st)
    # (It was refused as a whole, exit 2; the row is now quarantined with its reason, like any
    # timestamp a report cannot hold: see tests/hostile/test_timestamps.py.)
    assert r.exit_code == 0 and "1 row quarantined" in r.stderr, r.output
    assert "quarantined 1" in r.output and "0 rows stored" in r.output, r.output
    said = [json.loads(line) for q in (st / "_llm_cost" / "quarantine").iterdir() for line in q.read_text().splitlines()]
    assert [x["reason"] for x in said] == ["timestamp is outside 0001-01-02..9999-12-30 UTC, the dates a report can "
                                           "hold in any zone (+12000-01-01T00:00:00Z)"]
    assert store.report(str(st), ["month"]).totals["requests"] == 1 and store.status(str(st))["consistent"]
    assert not [p for p in st.iterdir() if "%" in p.name]


def test_a_store_whose_files_gave_no_rows_is_called_that_not_a_foreign_directory(tmp_path):
    st = tmp_path / "store"
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    assert run("ingest", empty, "--store", st).exit_code == 0
    for args in (["report", "--store", st], ["store", "status", st]):
        r = run(*args)
        assert r.exit_code == 2 and "no rows yet" in r.stderr and "not an llm-cost store" not in r.stderr, r.output


@pytest.mark.parametrize("named", ["{outside}", "../{name}", "quarantine/../../{name}", "rows"])
def test_an_upgrade_copies_no_quarantine_file_from_outside_the_old_store(tmp_path, named):
    st = tmp_path / "old"
    shutil.copytree(ROOT / "fixtures" / "store-v1", st)
    secret = tmp_path / "secret.jsonl"
    secret.write_text("not the store's\n")
    manifest = json.loads((st / "manifest.json").read_text())
    entry = next(e for e in manifest["files"].values() if e.get("quarantine"))
    entry["quarantine"] = named.format(outside=secret, name=secret.name)
    (st / "manifest.json").write_text(json.dumps(manifest))
    r = run("store", "upgrade", st)
    assert r.exit_code == 2 and "damaged store" in r.stderr and "quarantine" in r.stderr, r.output
    assert not (st / "_delta_log").exists() and not list(st.rglob(secret.name))
