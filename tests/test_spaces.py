"""Space files: every shipped space validates, the report spaces hold the 40 reference ids,
and bad spaces fail with one line naming the file and the field, before Ray starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from deepnets.errors import ConfigError
from deepnets.reference import report_rows, report_tables, table_ids
from deepnets.spaces import load_space
from deepnets.storage import Location
from deepnets.sweep_plan import plan_sweep, trial_rows

ROOT = Path(__file__).resolve().parents[1]
SPACES = sorted((ROOT / "tune_spaces").glob("*.yaml"))
REPORT_SPACES = [p for p in SPACES if p.name.startswith("report_")]


def test_reference_copy_has_forty_rows_in_six_tables():
    assert len(report_rows()) == 40 and len(report_tables()) == 6


@pytest.mark.parametrize("path", SPACES, ids=[p.name for p in SPACES])
def test_every_shipped_space_validates_in_every_fidelity(path, tmp_path):
    space = load_space(path)
    for fidelity in [None, *space.fidelity]:
        plan = plan_sweep(path, fidelity=fidelity, storage=str(tmp_path), name=None)
        assert plan.trial_count() >= 1
        assert len(trial_rows(plan)) == len(plan.configs) * len(space.seeds)


def test_report_spaces_hold_exactly_the_reference_ids():
    assert len(REPORT_SPACES) == 6
    found = {}
    for path in REPORT_SPACES:
        space = load_space(path)
        table = (space.report_table.dataset, space.report_table.family)
        assert [v.id for v in space.variants] == table_ids(*table)
        found[table] = len(space.variants)
        assert {"proxy", "full"} <= set(space.fidelity)
    assert sum(found.values()) == 40 and set(found) == set(report_tables())


@pytest.mark.parametrize("path", REPORT_SPACES, ids=[p.name for p in REPORT_SPACES])
def test_proxy_keeps_every_variant_distinct(path, tmp_path):
    plan = plan_sweep(path, fidelity="proxy", storage=str(tmp_path), name=None)
    configs = [repr(sorted(c.items())) for c in plan.configs.values()]
    assert len(set(configs)) == len(configs)
    full = plan_sweep(path, fidelity="full", storage=str(tmp_path), name=None)
    for variant, cfg in full.configs.items():
        assert cfg["epochs"] in (10, 20) and cfg["global_batch_size"] == 64, variant
        assert plan.configs[variant]["epochs"] < cfg["epochs"]


def test_report_settings_match_the_reference_rows(tmp_path):
    rows = {(r.dataset, r.family, r.id): r for r in report_rows()}
    for path in REPORT_SPACES:
        plan = plan_sweep(path, fidelity="full", storage=str(tmp_path), name=None)
        table = plan.space.report_table
        for variant, cfg in plan.configs.items():
            row = rows[(table.dataset, table.family, variant)]
            assert cfg["model"]["name"] == row.settings["model"]
            if "lr" in row.settings:
                assert cfg["optim"]["lr"] == row.settings["lr"]
            if "optimizer" in row.settings:
                assert cfg["optim"]["name"] == row.settings["optimizer"]
            if "momentum" in row.settings:
                assert cfg["optim"]["momentum"] == row.settings["momentum"]
            if "epochs" in row.settings:
                assert cfg["epochs"] == row.settings["epochs"]
            if row.settings.get("augment"):
                assert cfg["data"]["augment"] == "report"


GOOD = """
name: tiny
base: {data: {dataset: digits}, epochs: 2}
variants:
  - {id: a}
  - {id: b, overrides: {optim.lr: 0.01}}
"""

BAD_SPACES = [
    ("variants:\n  - {id: a}\n  - {id: a}\n", "variants: variant id 'a' appears more than once"),
    ("colour: red\n", "colour: unknown key; allowed: name"),
    ("variants:\n  - {id: c, overrides: {optim.lr: -1}}\n", "variant c: optim.lr"),
    ("variants:\n  - {id: c, overrides: {model.name: vgg17}}\n", "unknown model 'vgg17'"),
    ("search: {optim.lr: {loguniform: [0, 1]}}\n", "loguniform needs low > 0"),
    ("search: {optim.lr: {uniform: [1, 0.1]}}\n", "needs low < high"),
    ("search: {optim.lr: {uniform: [0.1, 1], choice: [1]}}\n", "give exactly one of"),
    ("search: {optim.lr: {grid: [0.1, -1]}}\n", "search.optim.lr=-1: optim.lr"),
    (  # each valid alone (vgg11's option; resnet18 without it), not together
        "search: {model.name: {choice: [vgg11, resnet18]}, "
        "model.options.batch_norm: {choice: [after_relu]}}\n",
        "search.model.name='resnet18', search.model.options.batch_norm='after_relu': model: "
        "model 'resnet18' has no option 'batch_norm'",
    ),
    ("scheduler: {type: hyperband}\n", "scheduler"),
    ("scheduler: {type: asha, reduction_factor: 1}\n", "reduction_factor"),
    ("metric: accuracy\n", "metric"),
    ("seeds: [1, 1]\n", "seeds repeat"),
    ("default_fidelity: proxy\n", "default_fidelity 'proxy' is not one of"),
    ("resources: {workers_per_trial: 0}\n", "resources.workers_per_trial"),
    ("variants:\n  - {id: 'has space'}\n", "variants.2.id"),
]


@pytest.mark.parametrize(("extra", "fragment"), BAD_SPACES, ids=[f for _, f in BAD_SPACES])
def test_bad_space_is_one_line_naming_file_and_field(tmp_path, extra, fragment):
    path = tmp_path / "space.yaml"
    text = GOOD + extra
    if extra.startswith("variants:"):  # replace the good variants instead of a duplicate key
        text = GOOD.split("variants:")[0] + extra
        if "'has space'" in extra:
            text = GOOD + "  - {id: 'has space'}\n"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        plan_sweep(path, fidelity=None, storage=str(tmp_path), name=None)
    message = str(info.value)
    assert "\n" not in message and str(path) in message
    assert fragment in message


def test_unknown_fidelity_and_storage_scheme(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(GOOD)
    with pytest.raises(ConfigError, match="fidelity 'gpu' is not defined"):
        plan_sweep(path, fidelity="gpu", storage=str(tmp_path), name=None)
    with pytest.raises(ConfigError, match="unknown storage scheme 'ftp://'"):
        plan_sweep(path, fidelity=None, storage="ftp://host/x", name=None)


def test_fidelity_scales_epochs_and_sets_resources(tmp_path):
    path = tmp_path / "space.yaml"
    path.write_text(
        GOOD.replace("epochs: 2", "epochs: 10")
        + "fidelity:\n  quick:\n    epochs_scale: 0.25\n    overrides: {data.train_subset: 100}\n"
        + "    resources: {workers_per_trial: 2, cpus_per_worker: 0.5}\n"
    )
    plan = plan_sweep(path, fidelity="quick", storage=str(tmp_path), name="x")
    assert plan.configs["a"]["epochs"] == 2  # round(10 * 0.25) = 2 (banker's rounding of 2.5)
    assert plan.configs["b"]["data"]["train_subset"] == 100
    assert plan.configs["b"]["num_workers"] == 2 and plan.configs["b"]["cpus_per_worker"] == 0.5
    assert plan.experiment_dir == Location(tmp_path / "x")


FAST_PROFILES = {  # profile -> (compile, GPU per trial, precision)
    "full_compiled": ("reduce-overhead", 0.5, "fp32"),
    "full_graphed": ("step_graph", 0.2, "bf16"),
}


@pytest.mark.parametrize("profile", FAST_PROFILES)
@pytest.mark.parametrize("path", REPORT_SPACES, ids=[p.name for p in REPORT_SPACES])
def test_fast_gpu_profiles_are_full_plus_how_it_runs(path, profile, tmp_path):
    """The compiled and graphed GPU profiles train exactly the `full` rows, only compiled (or
    graphed, in bf16) and with another number of trials per GPU, so that their tables compare
    with full's row by row; the driver validated every trial (step_graph: one worker, a
    constant lr)."""
    full = plan_sweep(path, fidelity="full", storage=str(tmp_path), name=None)
    fast = plan_sweep(path, fidelity=profile, storage=str(tmp_path), name=None)
    assert fast.configs.keys() == full.configs.keys()
    assert fast.scheduler == full.scheduler  # FIFO: every row to the end
    how = {"compile", "gpus_per_worker", "cpus_per_worker", "precision"}  # not what it trains
    for variant, cfg in fast.configs.items():
        how_it_runs = (cfg["compile"], cfg["gpus_per_worker"], cfg["precision"])
        assert how_it_runs == FAST_PROFILES[profile], variant
        assert {k: v for k, v in cfg.items() if k not in how} == {
            k: v for k, v in full.configs[variant].items() if k not in how
        }
