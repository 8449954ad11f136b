"""The sync's plan and settings for the optional tables (artifacts, logged models, the registry),
without Spark."""

from __future__ import annotations

import pytest

from pyspark_experiments.errors import ConfigurationError
from pyspark_experiments.stores.base import StoreCapabilities
from pyspark_experiments.stores.fingerprints import fingerprint
from pyspark_experiments.sync import SyncConfig, config_from_args
from pyspark_experiments.sync.config import DEFAULT_TABLES
from pyspark_experiments.sync.plan import KEYED_TABLES, OPTIONAL_TABLES, Flags, Scan, make_plan
from pyspark_experiments.sync.state import SyncState

SQLITE = StoreCapabilities("sql", "sql", "rowid", True, 1, True)
ALL = Flags(tables=OPTIONAL_TABLES)


def fp(run="r", params="p", tags="t", inputs="i") -> str:
    return fingerprint({"run": run, "params": params, "tags": tags, "inputs": inputs})


RUNS = {"a": fp(), "b": fp(), "c": fp()}
SERIES = {("a", "loss"): 5, ("b", "loss"): 7}


def scan(runs=RUNS, series=SERIES) -> Scan:
    return Scan(("1",), {r: ("1", v) for r, v in runs.items()}, dict(series), SQLITE.state_key,
                SQLITE.positions_key, SQLITE.metric_positions, SQLITE.exact_metric_ranges)


def saved(runs=RUNS, series=SERIES, kept=OPTIONAL_TABLES, digests=None) -> SyncState:
    return SyncState(
        runs={r: ("1", v) for r, v in runs.items()}, series=dict(series),
        meta={"sync": {"sync_id": 1, "holder": "h"}, "state_key": SQLITE.state_key,
              "positions_key": SQLITE.positions_key, "metrics_exact": True, "tables": list(kept),
              "digests": dict(digests or {})},
    )


def test_first_sync_lists_every_run_and_writes_every_keyed_table():
    plan = make_plan(scan(), SyncState(), ALL)
    assert plan.changed["artifacts"] == {"a", "b", "c"}
    assert plan.tables == OPTIONAL_TABLES and plan.rewrite == set(KEYED_TABLES)
    assert not plan.appends("artifacts")  # a full sync merges (into an empty table: an append)


def test_nothing_changed_lists_nothing_and_compares_digests():
    plan = make_plan(scan(), saved(digests={"models": "m1"}), ALL)
    assert plan.changed["artifacts"] == set() and plan.rewrite == set()
    assert not plan.writes_keyed("models", "m1", {"models": "m1"})
    assert plan.writes_keyed("models", "m2", {"models": "m1"})
    assert plan.writes_keyed("registered_models", "r1", {})  # no saved digest: written


def test_artifacts_relisted_for_runs_reread_for_any_reason():
    runs = dict(RUNS, b=fp(tags="t2"), c=fp(inputs="i2"), d=fp())
    plan = make_plan(scan(runs, {**SERIES, ("a", "loss"): 9}), saved(), ALL)
    # a: metric points; b: a tag; c: an input; d: a new run
    assert plan.changed["artifacts"] == {"a", "b", "c", "d"}
    new_only = make_plan(scan(dict(RUNS, d=fp())), saved(), ALL)
    assert new_only.changed["artifacts"] == {"d"} and new_only.appends("artifacts")


def test_relist_artifacts_and_full_list_every_run():
    assert make_plan(scan(), saved(), Flags(tables=OPTIONAL_TABLES, relist_artifacts=True)).changed["artifacts"] == set(RUNS)
    full = make_plan(scan(), saved(), Flags(full=True, tables=OPTIONAL_TABLES))
    assert full.changed["artifacts"] == set(RUNS) and full.rewrite == set(KEYED_TABLES)


def test_a_table_kept_for_the_first_time_is_read_whole():
    plan = make_plan(scan(), saved(kept=("models",)), ALL)
    assert plan.changed["artifacts"] == set(RUNS)
    assert plan.rewrite == {"registered_models", "model_versions"}
    # state written before the optional tables existed: none of them was kept
    legacy = saved()
    del legacy.meta["tables"]
    assert make_plan(scan(), legacy, ALL).rewrite == set(KEYED_TABLES)


def test_a_recovering_sync_rewrites_the_keyed_tables():
    plan = make_plan(scan(), saved(), Flags(recovering=True, tables=OPTIONAL_TABLES))
    assert plan.rewrite == set(KEYED_TABLES)
    assert plan.changed["artifacts"] == set()  # like the other per-run tables: changed runs, merged


def test_tables_not_kept_are_not_planned():
    plan = make_plan(scan(dict(RUNS, d=fp())), saved(), Flags(tables=("registered_models",)))
    assert plan.tables == ("registered_models",)
    assert plan.changed["artifacts"] == set() and plan.rewrite == set()
    assert plan.touched_runs == {"d"}  # the run counts leave artifacts out


def test_tables_setting():
    assert SyncConfig().tables is None  # the defaults, where the store serves them
    assert DEFAULT_TABLES == ("models", "registered_models", "model_versions")
    assert SyncConfig().override(tables=["model_versions", "Artifacts"]).tables == ("artifacts", "model_versions")
    assert SyncConfig().override(tables="none").tables == () and SyncConfig().override(tables=[]).tables == ()
    with pytest.raises(ConfigurationError, match="'runs' is always synced"):
        SyncConfig().override(tables=["runs"])
    with pytest.raises(ConfigurationError, match="'modles' is not a table.*artifacts, models"):
        SyncConfig().override(tables="modles")


def test_tables_in_toml_and_flags(tmp_path):
    path = tmp_path / "sync.toml"
    path.write_text('[target]\npath = "/d"\n[sync]\ntables = ["artifacts"]\nrelist_artifacts = true\n')
    cfg = SyncConfig.from_toml(str(path))
    assert cfg.tables == ("artifacts",) and cfg.relist_artifacts
    cfg, _ = config_from_args(["--config", str(path), "--tables", "models,registered_models"])
    assert cfg.tables == ("models", "registered_models") and cfg.relist_artifacts
    cfg, _ = config_from_args(["--target-path", "/d", "--relist-artifacts", "--tables", "none"])
    assert cfg.tables == () and cfg.relist_artifacts
    path.write_text('[target]\npath = "/d"\n[sync]\ntables = "artifacts"\n')
    with pytest.raises(ConfigurationError, match=r"\[sync\] tables = 'artifacts': expected a list"):
        SyncConfig.from_toml(str(path))


def test_a_permissive_artifact_skip_names_its_run_so_the_sync_rereads_it(tmp_path):
    """An unlistable artifact root, skipped in PERMISSIVE, is reported with its run: the sync
    records that run as unsynced (its artifacts are listed again next time), not every run."""
    from pyspark_experiments.stores.artifacts import plan_artifacts, read_artifacts
    from pyspark_experiments.stores.base import Selection
    from pyspark_experiments.stores.problems import collect_skipped
    from pyspark_experiments.sync.plan import skipped_runs

    (tmp_path / "good" / "artifacts").mkdir(parents=True)
    (tmp_path / "good" / "artifacts" / "a.txt").write_text("a")
    selection = Selection("artifacts", ("1",), mode="PERMISSIVE")
    runs = [("1", "good", str(tmp_path / "good" / "artifacts")), ("1", "odd", "ftp://host/artifacts")]
    with collect_skipped() as skipped:
        rows = [row for p in plan_artifacts(selection, runs) for b in read_artifacts(p) for row in b.to_pylist()]
    assert [(r["run_id"], r["path"]) for r in rows] == [("good", "a.txt")]
    assert [(s.experiment_id, s.run_id) for s in skipped] == [("1", "odd")] and "ftp" in skipped[0].where
    plan = make_plan(scan({"good": fp(), "odd": fp()}, {}), SyncState(), ALL)
    assert skipped_runs(plan, skipped) == {"odd"}
