"""The study runner: presets, the plan, and the scheduler's resume / failure semantics.

The end-to-end study (real notebooks, real training, kill -9 and resume) is in
tests/test_study_e2e.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from conftest import wait_for_exit
from mirage import study
from mirage.runs import run_dir
from mirage.study.plan import only_arg
from mirage.conditions import CONDITIONS, PAPER_CONDITIONS
from mirage.testbed.pretrain import FAMILY


def test_shipped_presets_cover_the_grid_they_promise():
    assert study.list_presets() == ["paper", "testbed-axis", "testbed-axis-extra", "testbed-axis-extra-quick",
                                    "testbed-axis-quick", "testbed-ci", "testbed-code", "testbed-code-quick",
                                    "testbed-contamination", "testbed-format", "testbed-format-quick", "testbed-full", "testbed-mechanism", "testbed-noise",
                                    "testbed-noise-quick", "testbed-predictors", "testbed-quick", "testbed-seeds"]
    full = study.load_preset("testbed-full")
    assert full.conditions == tuple(CONDITIONS) and full.seeds == (0, 1, 2)  # every condition, listed in the file
    assert full.tasks == ("toy-math", "toy-logic") and full.models == tuple(FAMILY)  # every shipped model
    assert len(full.cells()) == 5 * 2 * len(CONDITIONS) * 3
    paper = study.load_preset("paper")
    assert paper.backend == "verl" and paper.conditions == PAPER_CONDITIONS
    assert set(paper.models) == {"Qwen/Qwen2.5-7B", "meta-llama/Llama-3.1-8B-Instruct"}
    assert paper.recipe_dict()["rollout_n"] == 16 and paper.eval.n == 256
    quick = study.load_preset("testbed-quick")
    rqs = {CONDITIONS[c].rq for c in quick.conditions}
    assert rqs == {"RQ1", "RQ2", "RQ3"} and len(quick.models) >= 3  # a curve needs several alignment levels
    # the README's table came from exactly these settings
    assert quick.overrides == {"val_freq": 0} and (quick.eval.n, quick.eval.align_n, quick.eval.alignment_k) == (16, 32, 16)
    assert quick.source is None and quick.cli_name == "testbed-quick"  # shipped: printed commands name it
    # testbed-seeds: the quick grid, every setting the same, x 3 seeds
    seeds = study.load_preset("testbed-seeds")
    assert seeds.seeds == (0, 1, 2) and len(seeds.cells()) == 3 * len(quick.cells())
    assert {k: v for k, v in seeds.identity().items() if k not in ("name", "seeds")} == {
        k: v for k, v in quick.identity().items() if k not in ("name", "seeds")}
    # testbed-predictors: the seeds grid over every shipped dial (10 model-task pairs to rank predictors over)
    predictors = study.load_preset("testbed-predictors")
    clean = tuple(name for name, config in FAMILY.items() if config.leak is None)  # no leaked variant
    assert predictors.models == clean and len(predictors.cells()) == len(seeds.cells()) * len(clean) // 3
    assert {k: v for k, v in predictors.identity().items() if k not in ("name", "models")} == {
        k: v for k, v in seeds.identity().items() if k not in ("name", "models")}


def test_the_format_preset_is_the_format_dial_under_the_seed_recipe():
    """testbed-format (issue 18, item 3): the format dial (F = 0, 0.3, 0.6 at dial-60's correctness) x toy-math x
    the rewards that pay for the format, 5 seeds, every other setting testbed-seeds'; the quick variant: 1 seed."""
    from mirage.testbed.pretrain import FORMAT, SHIPPED

    p, quick, seeds = (study.load_preset(n) for n in ("testbed-format", "testbed-format-quick", "testbed-seeds"))
    assert p.models == ("dial-60", "fmt-30", "fmt-60") and p.tasks == ("toy-math",)
    assert [SHIPPED[m].broken_share("toy-math") for m in p.models] == [0, 0.3, 0.6]
    assert {m: SHIPPED[m].q for m in p.models} == {m: FAMILY["dial-60"].q for m in p.models} and set(FORMAT) < set(p.models)
    assert p.conditions == ("ground_truth", "format", "random", "random_ungated", "incorrect")
    assert p.seeds == (0, 1, 2, 3, 4) and len(p.cells()) == 3 * 5 * 5 and quick.seeds == (0,) and len(quick.cells()) == 15
    same = ("name", "models", "tasks", "conditions", "seeds", "one_shot")  # one_shot: no one-shot condition here
    assert {k: v for k, v in p.identity().items() if k not in same} == {
        k: v for k, v in seeds.identity().items() if k not in same}
    assert {k: v for k, v in quick.identity().items() if k not in ("name", "seeds")} == {
        k: v for k, v in p.identity().items() if k not in ("name", "seeds")}


def test_the_axis_presets_cover_each_task_axis_without_gaps():
    """testbed-axis / -extra (issue 18, items 2 and 6): per toy task, models whose base pass@16 (their cards)
    runs from <= 0.2 to >= 0.95 with no gap > 0.2, at least 6 per task, x the RQ1-RQ3 conditions (and the
    four never run on a grid) x 5 seeds, every other setting testbed-seeds'; the quick variants: seed 0 on
    each task's two ends and middle."""
    from mirage.models import read_card, resolve_model
    from mirage.testbed.pretrain import SHIPPED

    seeds = study.load_preset("testbed-seeds")
    axis, extra = study.load_preset("testbed-axis"), study.load_preset("testbed-axis-extra")
    assert axis.conditions == ("ground_truth", "random", "one_shot", "nsr")
    assert {CONDITIONS[c].rq for c in axis.conditions} == {"RQ1", "RQ2", "RQ3"}
    assert extra.conditions == ("incorrect", "format", "entropy_min", "psr")
    for p in (axis, extra):
        assert p.seeds == (0, 1, 2, 3, 4) and len(p.cells()) == 15 * 4 * 5
        same = ("name", "models", "tasks", "pairs", "conditions", "seeds")
        assert {k: v for k, v in p.identity().items() if k not in same} == {
            k: v for k, v in seeds.identity().items() if k not in same}
        pairs = [(c.model, c.task) for c in p.cells()]
        for task in ("toy-math", "toy-logic"):
            models = list(dict.fromkeys(m for m, t in pairs if t == task))
            assert all(SHIPPED[m].leak is None and SHIPPED[m].broken_share(task) == 0 for m in models)
            p16 = sorted(read_card(resolve_model(m))["passk"][task]["pass@16"] for m in models)
            assert len(models) >= 6 and p16[0] <= 0.2 and p16[-1] >= 0.95, (task, p16)
            assert max(b - a for a, b in zip(p16, p16[1:])) <= 0.2 + 1e-9, (task, p16)
    assert axis.pairs == extra.pairs
    for name, full in (("testbed-axis-quick", axis), ("testbed-axis-extra-quick", extra)):
        quick = study.load_preset(name)
        assert quick.seeds == (0,) and set(quick.pairs) < set(full.pairs) and len(quick.cells()) == 24
        assert {k: v for k, v in quick.identity().items() if k not in ("name", "seeds", "pairs")} == {
            k: v for k, v in full.identity().items() if k not in ("name", "seeds", "pairs")}


def test_the_noise_preset_is_the_preregistered_batch_axis():
    """testbed-noise (issue 18, item 4b; docs/science.md 6): random reward on dial-90 x toy-math at 8 updates per
    rollout, clip vs no clip, 8 / 32 / 128 prompts per step, 5 seeds; every regime differs only in those keys."""
    p = study.load_preset("testbed-noise")
    cells = p.cells()
    assert {(c.model, c.task, c.condition) for c in cells} == {("dial-90", "toy-math", "random")}
    assert len(cells) == 6 * 5 and {c.seed for c in cells} == {0, 1, 2, 3, 4}
    base = p.recipe_dict()
    for name, regime in p.regimes.items():
        r = {**base, **regime}
        prompts = int(name[1:].split("_")[0])
        assert r["train_batch_size"] == prompts and r["ppo_epochs"] * prompts // r["ppo_mini_batch_size"] == 8
        assert (r.get("policy_loss") == "no_clip") == name.endswith("_noclip") and r["lr"] == 1.0e-4
    quick = study.load_preset("testbed-noise-quick")
    assert quick.seeds == (0,) and len(quick.cells()) == 6


def test_the_mechanism_preset_is_the_grid_of_issue_14():
    """Both random-reward forms on the most aligned pair of each toy task and the least aligned math pair,
    under 2 / 8 / 16 updates per rollout, clip-higher, no-clip and RLOO; ground truth at 2 and 16; 5 seeds;
    the 300-step clip vs no-clip axis; greedy evaluation; the clipping-bias notebook."""
    p = study.load_preset("testbed-mechanism")
    cells = p.cells()
    assert len(cells) == len(set(cells)) == 3 * 2 * 6 * 5 + 3 * 2 * 5 + 2 * 5
    pairs = {("dial-90", "toy-math"), ("dial-10", "toy-logic"), ("dial-10", "toy-math")}
    assert {(c.model, c.task) for c in cells} == pairs and {c.seed for c in cells} == {0, 1, 2, 3, 4}
    grid = {(c.condition, c.regime) for c in cells}
    sweep = ["u2", "u8", "u16", "u16_hi", "u16_noclip", "u16_rloo"]
    assert grid == ({(c, r) for c in ("random", "random_ungated") for r in sweep}
                    | {("ground_truth", "u2"), ("ground_truth", "u16"), ("random", "steps300_clip"),
                       ("random", "steps300_noclip")})
    assert {(c.model, c.task) for c in cells if c.regime.startswith("steps300")} == {("dial-90", "toy-math")}
    r = {name: p.recipe_obj(name) for name in p.regimes}
    assert [r[n].updates_per_rollout for n in sweep] == [2, 8, 16, 16, 16, 16]
    assert r["u2"].clip_ratio_high == r["u16"].clip_ratio_high == 0.2 and r["u16_hi"].clip_ratio_high == 0.28
    assert r["u16_noclip"].policy_loss == r["steps300_noclip"].policy_loss == "no_clip"
    assert r["u16_rloo"].estimator_override == "rloo" and r["u16"].estimator_override == ""
    assert {r[n].total_steps for n in sweep} == {40} and r["steps300_clip"].total_steps == 300
    assert r["steps300_clip"].save_freq == 50 and r["u16"].save_freq == 40  # one evaluated checkpoint per 40-step run
    assert r["steps300_clip"].lr < min(r[n].lr for n in sweep)  # the steps axis runs at a small learning rate
    assert p.eval.greedy and p.eval.checkpoints == "all" and p.analysis == ("40_clipping_bias.ipynb",)


def test_a_grid_of_pairs_regimes_and_sub_grids_expands_to_each_cell_once(tmp_path):
    path = _write(tmp_path, "grid.yaml", """backend: local
pairs: [[dial-90, toy-math], [dial-10, toy-logic]]
conditions: [random]
seeds: [0, 1]
overrides: {total_steps: 8}
regimes: {a: {ppo_mini_batch_size: 1}, b: {ppo_mini_batch_size: 1, policy_loss: no_clip}}
grids:
  - {}                                             # every top-level value: 2 pairs x random x a, b x 2 seeds
  - {conditions: [random, ground_truth], regimes: [a], seeds: [1]}   # random/a/seed1 again: once
  - {models: [dial-60], tasks: [toy-math, toy-logic], regimes: [b], seeds: [0]}   # models x tasks, no pairs
""")
    p = study.load_preset(path)
    cells = p.cells()
    assert len(cells) == len(set(cells)) == 8 + 2 + 2  # 8, then ground_truth/a/seed1 x 2 pairs, then dial-60 x 2
    assert cells[0] == study.Cell("dial-90", "toy-math", "random", 0, "a")
    assert study.Cell("dial-10", "toy-logic", "ground_truth", 1, "a") in cells
    assert {(c.model, c.task, c.regime) for c in cells if c.model == "dial-60"} == {
        ("dial-60", "toy-math", "b"), ("dial-60", "toy-logic", "b")}
    assert p.describe_grid() == "the union of 3 sub-grids"
    # a regime's recipe: the preset's overrides, then the regime's
    assert p.cell_overrides("b") == {"total_steps": 8, "ppo_mini_batch_size": 1, "policy_loss": "no_clip"}
    assert p.recipe_obj("b").updates_per_rollout == 8 and p.recipe_obj().updates_per_rollout == 2

    steps = study.plan(p, tmp_path / "out")
    by_id = {s.id: s for s in steps}
    cell = by_id["dial-90/toy-math/random/b/seed1"]  # the regime is part of the id
    assert cell.dir == run_dir("dial-90", "toy-math", "random", 1, tmp_path.resolve() / "out" / "runs", regime="b")
    assert cell.dir.parent.name == "b" and cell.params["regime"] == "b"
    assert cell.params["recipe_overrides"] == p.cell_overrides("b")
    # only the pairs the cells use are measured (not dial-90 x toy-logic), and the notebook is told so
    measured = [s.id for s in steps if s.kind == "measure"]
    assert sorted(measured) == sorted(f"alignment/{m}/{t}" for m, t in {(c.model, c.task) for c in cells})
    assert "alignment/dial-90/toy-logic" not in measured
    assert sorted(map(tuple, by_id["alignment"].params["pairs"])) == sorted({(c.model, c.task) for c in cells})
    # --only selects by regime too, and a cell's own --only selects exactly it
    only = study.parse_only("regime=a,seed=1")
    picked = [s.cell for s in study.plan(p, tmp_path / "out", only) if s.kind == "cell"]
    assert picked and all(c.regime == "a" and c.seed == 1 for c in picked)
    assert [s.cell for s in study.plan(p, tmp_path / "out", study.parse_only(only_arg(cell.cell)))
            if s.kind == "cell"] == [cell.cell]
    lines: list[str] = []
    study.dry_run(p, tmp_path / "out", log=lines.append)
    block = "\n".join(lines).split("cell dial-90/toy-math/random/b/seed1 ")[1].split("\n## ")[0]
    assert "regime=b,seed=1" in block and "--set=policy_loss=no_clip" in block and "--set=total_steps=8" in block


def test_a_preset_without_the_new_keys_plans_exactly_as_before(tmp_path):
    """A study directory made before regimes / greedy / analysis lists existed stays finished: the same
    cell ids, run folders, step parameters and study.json identity."""
    p = study.load_preset("testbed-ci")
    assert not {"pairs", "regimes", "grids", "analysis"} & set(p.to_dict()) and "greedy" not in p.to_dict()["eval"]
    steps = study.plan(p, tmp_path)
    cell = next(s for s in steps if s.kind == "cell")
    assert cell.id == "dial-90/toy-math/ground_truth/seed0" and cell.dir == tmp_path.resolve() / "runs" / cell.id
    assert set(cell.params) == {"backend", "preset", "study_dir", "model", "task", "condition", "seed", "run_dir",
                                "recipe", "recipe_overrides", "eval", "alignment_table", "history_run", "figures_dir"}
    assert "greedy" not in cell.params["eval"] and "pairs" not in next(s for s in steps if s.kind == "alignment").params
    assert [(s.id, s.dir) for s in steps if s.kind == "analysis"] == [("analysis", tmp_path.resolve() / "analysis")]


def test_greedy_evaluation_and_analysis_notebooks_reach_their_steps(tmp_path):
    greedy = "eval: {n: 4, greedy: true}\n"
    path = _write(tmp_path, "g.yaml", GOOD + greedy + "analysis:\n  - 90_figures.ipynb\n"
                  "  - 40_clipping_bias.ipynb: {bandit: {steps: 5}}\n")
    p = study.load_preset(path)
    steps = study.plan(p, tmp_path / "out")
    assert all(s.params["eval"]["greedy"] is True for s in steps if s.kind in ("measure", "alignment", "cell"))
    analyses = [s for s in steps if s.kind == "analysis"]
    assert [s.id for s in analyses] == ["analysis", "analysis/40_clipping_bias"] and steps[-2:] == analyses
    assert analyses[1].dir == (tmp_path / "out").resolve() / "analysis" / "40_clipping_bias"
    assert analyses[1].params["bandit"] == {"steps": 5} and "bandit" not in analyses[0].params
    # analysis notebooks do not decide the results: changing them keeps the study directory's preset
    assert p.identity() == study.load_preset(_write(tmp_path, "g2.yaml", "name: g\n" + GOOD + greedy)).identity()
    bad = GOOD + "analysis: [{40_clipping_bias.ipynb: {bandits: {}}}]\n"
    with pytest.raises(KeyError, match=r"g3\.yaml.*40_clipping_bias.*bandits"):
        study.plan(study.load_preset(_write(tmp_path, "g3.yaml", bad)), tmp_path / "o3")
    with pytest.raises(FileNotFoundError, match=r"g4\.yaml.*99_none\.ipynb"):
        study.plan(study.load_preset(_write(tmp_path, "g4.yaml", GOOD + "analysis: [99_none.ipynb]\n")),
                   tmp_path / "o4")


def _write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return str(path)


GOOD = "backend: local\nmodels: [dial-90]\ntasks: [toy-math]\nconditions: [random, nsr]\n"


def test_preset_files_are_validated_naming_the_key_and_the_file(tmp_path):
    cases = [("unknown_key.yaml", GOOD + "colour: red\n", "colour"),
             ("bad_eval.yaml", GOOD + "eval: {n: 4, nn: 3}\n", "nn"),
             ("bad_one_shot.yaml", GOOD + "one_shot: {pool: 8, epoch: 2}\n", "epoch"),
             ("bad_condition.yaml", GOOD.replace("nsr", "no_such_condition"), "no_such_condition"),
             ("bad_task.yaml", GOOD.replace("toy-math", "toy-chess"), "toy-chess"),
             ("bad_recipe_key.yaml", GOOD + "overrides: {total_stepz: 3}\n", "total_stepz"),
             ("bad_recipe.yaml", GOOD + "recipe: fast\n", "fast"),
             ("bad_models.yaml", GOOD.replace("[dial-90]", "dial-90"), "models must be a list"),
             ("missing.yaml", "backend: local\nmodels: [dial-90]\ntasks: [toy-math]\n", "conditions"),
             # the keys of grids, pairs and regimes, greedy evaluation and the analysis notebooks
             ("bad_pairs.yaml", GOOD + "pairs: [[dial-90]]\n", "pairs"),
             ("pairs_and_models.yaml", GOOD + "pairs: [[dial-90, toy-math]]\n", "pairs or models/tasks"),
             ("pair_task.yaml", "backend: local\npairs: [[dial-90, toy-chess]]\nconditions: [random]\n", "toy-chess"),
             ("bad_regimes.yaml", GOOD + "regimes: [u2]\n", "regimes must be a mapping"),
             ("bad_regime_name.yaml", GOOD + "regimes: {'u/2': {}}\n", "u/2"),
             ("bad_regime_key.yaml", GOOD + "regimes: {u2: {ppo_epoch: 2}}\n", r"regimes\.u2.*ppo_epoch"),
             ("bad_regime_value.yaml", GOOD + "regimes: {u2: {policy_loss: none}}\n", r"regimes\.u2.*policy_loss"),
             ("bad_grids.yaml", GOOD + "grids: {conditions: [random]}\n", "grids must be a list"),
             ("bad_grid_key.yaml", GOOD + "grids: [{condition: [random]}]\n", r"grids\[0\].*condition"),
             ("bad_grid_regime.yaml", GOOD + "regimes: {a: {}}\ngrids: [{}, {regimes: [b]}]\n",
              r"grids\[1\]\.regimes.*'b'"),
             ("bad_grid_seeds.yaml", GOOD + "grids: [{seeds: [0, 0]}]\n", r"grids\[0\]\.seeds"),
             ("grid_missing.yaml", "backend: local\nmodels: [dial-90]\ngrids: [{conditions: [random]}]\n",
              r"grids\[0\]: missing key\(s\) \['models/tasks or pairs'\]"),
             ("bad_greedy.yaml", GOOD + "eval: {greedy: 1}\n", "eval.greedy"),
             ("bad_analysis.yaml", GOOD + "analysis: [figures.py]\n", "analysis"),
             ("empty_analysis.yaml", GOOD + "analysis: []\n", "analysis is empty")]
    for name, text, key in cases:
        path = _write(tmp_path, name, text)
        with pytest.raises(study.PresetError, match=key) as err:
            study.load_preset(path)
        assert name in str(err.value), str(err.value)  # the message names the file
    with pytest.raises(study.PresetError, match="unknown preset"):
        study.load_preset("no-such-preset")
    with pytest.raises(FileNotFoundError, match="no-such.yaml"):
        study.load_preset(str(tmp_path / "no-such.yaml"))


def test_a_preset_file_keeps_its_path_for_printed_commands(tmp_path):
    path = _write(tmp_path, "mine.yaml", GOOD + "seeds: [0, 1]\neval: {n: 4, align_n: 8}\n")
    p = study.load_preset(path)
    assert p.name == "mine" and p.description == ""  # the name defaults to the file's stem; description optional
    assert p.eval.n == 4 and p.eval.align_n == 8 and len(p.cells()) == 4
    assert p.source == str(Path(path).resolve()) and p.cli_name == p.source
    lines: list[str] = []
    study.dry_run(p, tmp_path / "out", log=lines.append)
    commands = [line for line in lines if line.startswith("mirage study")]
    assert commands and all(f"--preset {p.source} " in line for line in commands)
    assert not (tmp_path / "out").exists()  # a dry run writes nothing


def test_preset_plugins_are_loaded_and_passed_to_every_step(tmp_path, monkeypatch):
    """A preset may use a condition from a plugin module it names; each step process loads it too."""
    plugin = tmp_path / "plugin_dir" / "mirage_test_study_plugin.py"
    plugin.parent.mkdir()
    plugin.write_text("from mirage.conditions import Condition, register_condition\n"
                      "register_condition(Condition('plugin_gt', 'RQ1', 'ground_truth', colour='#123456'), replace=True)\n")
    monkeypatch.syspath_prepend(str(plugin.parent))
    path = _write(tmp_path, "p.yaml", GOOD.replace("nsr", "plugin_gt") + "plugins: [mirage_test_study_plugin]\n")
    try:
        p = study.load_preset(path)
        assert p.plugins == ("mirage_test_study_plugin",) and "plugin_gt" in p.conditions
        from mirage.study.runner import step_env

        monkeypatch.setenv("MIRAGE_PLUGINS", "other_plugin")
        assert step_env(1, p.plugins)["MIRAGE_PLUGINS"] == "other_plugin,mirage_test_study_plugin"
    finally:
        CONDITIONS.unregister("plugin_gt")
    monkeypatch.delenv("MIRAGE_PLUGINS")
    with pytest.raises(ImportError, match=r"p2\.yaml.*no_such_plugin_module"):
        study.load_preset(_write(tmp_path, "p2.yaml", GOOD + "plugins: [no_such_plugin_module]\n"))


def test_parse_only():
    assert study.parse_only(["model=a,task=toy-math", "condition=random|nsr,seed=0,regime=u2|u16"]) == {
        "model": {"a"}, "task": {"toy-math"}, "condition": {"random", "nsr"}, "seed": {"0"}, "regime": {"u2", "u16"}}
    with pytest.raises(ValueError, match="colour"):
        study.parse_only("colour=red")
    with pytest.raises(ValueError, match="KEY=VALUE"):
        study.parse_only("random")


def test_plan_orders_alignment_history_cells_analysis(tmp_path):
    preset = study.load_preset("testbed-quick")
    steps = study.plan(preset, tmp_path)
    kinds = [s.kind for s in steps]
    pairs = [(m, t) for m in preset.models for t in preset.tasks]
    assert kinds[:len(pairs) + 1] == ["measure"] * len(pairs) + ["alignment"] and kinds[-1] == "analysis"
    assert steps[len(pairs)].deps == [f"alignment/{m}/{t}" for m, t in pairs]  # the table waits for every pair
    cells = [s for s in steps if s.kind == "cell"]
    assert len(cells) == len(preset.cells())
    histories = {s.id: s for s in steps if s.kind == "history"}
    assert set(histories) == {f"history/{m}/{t}" for m in preset.models for t in preset.tasks}
    for s in cells:
        nb = Path(s.argv[3]).name
        assert nb == study.RQ_NOTEBOOKS[CONDITIONS[s.cell.condition].rq]
        assert s.dir == s.cell.run_dir(tmp_path.resolve())
        # the one run-folder naming function, rooted at <study>/runs
        assert s.dir == run_dir(s.cell.model, s.cell.task, s.cell.condition, s.cell.seed, tmp_path.resolve() / "runs")
        pair = f"alignment/{s.cell.model}/{s.cell.task}"  # the base curve comes from its own pair
        assert s.params["alignment_table"].endswith(f"pairs/{s.cell.model}/{s.cell.task}/alignment.parquet")
        if s.cell.condition == "one_shot":  # the selected example needs its history run first
            assert s.deps == [pair, f"history/{s.cell.model}/{s.cell.task}"] and s.params["history_run"]
        else:
            assert s.deps == [pair] and not s.params["history_run"]
    # --only narrows cells, the alignment step and the history steps to what is selected
    only = study.parse_only("model=dial-90,condition=random|one_shot")
    steps = study.plan(preset, tmp_path, only)
    cells = [s for s in steps if s.kind == "cell"]
    assert {(s.cell.model, s.cell.condition) for s in cells} == {("dial-90", "random"), ("dial-90", "one_shot")}
    assert [s.id for s in steps if s.kind == "measure"] == ["alignment/dial-90/toy-math", "alignment/dial-90/toy-logic"]
    assert next(s for s in steps if s.kind == "alignment").params["models"] == ["dial-90"]
    assert {s.id for s in steps if s.kind == "history"} == {"history/dial-90/toy-math", "history/dial-90/toy-logic"}
    with pytest.raises(ValueError, match="selects no cell"):
        study.plan(preset, tmp_path, study.parse_only("model=nobody"))


def _step(tmp_path, sid, code, deps=()):
    d = tmp_path / sid
    return study.Step(sid, "cell", d, [sys.executable, "-c", code], {"id": sid}, deps=list(deps))


def test_run_steps_records_failures_blocks_dependants_and_skips_finished(tmp_path):
    counter = tmp_path / "runs.txt"
    ok = f"open({str(counter)!r}, 'a').write('x')"
    steps = [_step(tmp_path, "a", ok), _step(tmp_path, "bad", "raise SystemExit('boom: bad input')"),
             _step(tmp_path, "needs_bad", ok, deps=["bad"]), _step(tmp_path, "c", ok, deps=["a"])]
    lines = []
    status = study.run_steps(steps, jobs=2, log=lines.append)
    assert status == {"a": "finished", "bad": "failed", "needs_bad": "blocked", "c": "finished"}
    rec = json.loads((tmp_path / "bad" / study.STEP_RECORD).read_text())
    # the mirage.runs manifest schema: kind, status, config, one entry per attempt
    assert rec["kind"] == "study-step" and rec["config"] == {"id": "bad"}
    assert rec["status"] == "failed" and "boom: bad input" in rec["error"] and rec["attempts"][-1]["returncode"] == 1
    assert json.loads((tmp_path / "needs_bad" / study.STEP_RECORD).read_text())["status"] == "blocked"
    assert counter.read_text() == "xx"
    assert any("FAILED bad" in line for line in lines)
    # rerun: finished steps are not rerun, the failed one is retried (and fails again)
    status = study.run_steps(steps, jobs=1, log=lines.append)
    assert status["a"] == status["c"] == "finished" and status["bad"] == "failed"
    assert counter.read_text() == "xx"
    assert len(json.loads((tmp_path / "bad" / study.STEP_RECORD).read_text())["attempts"]) == 2
    # a step whose parameters changed is not "finished" any more
    steps[0].params["id"] = "changed"
    assert not steps[0].finished


def test_a_stage_run_waits_on_nothing_outside_it(tmp_path):
    """--stage cells after --stage alignment: a dependency outside the stage counts if it finished and
    blocks its dependants if not (the runner cannot wait for a step it does not run)."""
    counter = tmp_path / "runs.txt"
    ok = f"open({str(counter)!r}, 'a').write('x')"
    done, pending = _step(tmp_path, "done", ok), _step(tmp_path, "pending", ok)
    assert study.run_steps([done], log=lambda line: None) == {"done": "finished"}
    cells = [_step(tmp_path, "after_done", ok, deps=["done"]), _step(tmp_path, "after_pending", ok, deps=["pending"])]
    lines: list[str] = []
    status = study.run_steps(cells, log=lines.append, outside=[done, pending])
    assert status == {"after_done": "finished", "after_pending": "blocked"} and counter.read_text() == "xx"
    assert any("blocked after_pending" in line and "has not finished" in line for line in lines)


def _gain_rows():
    import pandas as pd

    rows = []

    def add(model, cond, step, p1, seed=0):
        rows.append(dict(model=model, task="toy-math", dataset="toy-math_test", condition=cond, rq="RQ1",
                         seed=seed, step=step, k=1, pass_at_k=p1, align_k=64, align_pass_at_k=0.9))

    add("strong", "base", 0, 0.50, seed=pd.NA)
    add("strong", "ground_truth", 20, 0.60)
    add("strong", "ground_truth", 40, 0.70)
    add("strong", "random", 40, 0.60)
    add("weak", "base", 0, 0.10, seed=pd.NA)
    add("weak", "ground_truth", 40, 0.11)  # gain 0.01 < MIN_GT_GAIN: no ratio
    add("weak", "random", 40, 0.05)
    return rows, add


def test_gain_table_guards_tiny_baseline_gains():
    import pandas as pd

    rows, _ = _gain_rows()
    g = study.gain_table(pd.DataFrame(rows)).set_index(["model", "condition"])
    assert g.loc[("strong", "random"), "baseline"] == CONDITIONS["random"].baseline == "ground_truth"
    assert g.loc[("strong", "random"), "gain"] == pytest.approx(0.10)  # final step (40), not step 20
    assert g.loc[("strong", "random"), "recovered"] == pytest.approx(0.5)
    assert g.loc[("strong", "ground_truth"), "recovered"] == pytest.approx(1.0)
    assert pd.isna(g.loc[("weak", "random"), "recovered"]) and g.loc[("weak", "random"), "gain"] == pytest.approx(-0.05)


def test_gain_table_uses_each_conditions_own_baseline():
    """A condition registered with another baseline is compared with that one, not with ground truth."""
    import pandas as pd

    from mirage.conditions import Condition, register_condition

    register_condition(Condition("vs_random", "RQ1", "ground_truth", baseline="random", colour="#010203"))
    try:
        rows, add = _gain_rows()
        add("strong", "vs_random", 40, 0.65)
        add("weak", "vs_random", 40, 0.20)  # random lost 0.05 on weak: below MIN_GT_GAIN, no ratio
        g = study.gain_table(pd.DataFrame(rows)).set_index(["model", "condition"])
        assert g.loc[("strong", "vs_random"), "baseline"] == "random"
        assert g.loc[("strong", "vs_random"), "baseline_gain"] == pytest.approx(0.10)
        assert g.loc[("strong", "vs_random"), "recovered"] == pytest.approx(1.5)  # 0.15 / 0.10
        assert pd.isna(g.loc[("weak", "vs_random"), "recovered"])
        # the summary tables name no condition: the new one is a column, in registry order (after the shipped ones)
        assert list(study.summary_table(pd.DataFrame(rows)).columns) == ["alignment", "base", "ground_truth",
                                                                          "random", "vs_random"]
        assert list(study.recovered_table(study.gain_table(pd.DataFrame(rows))).columns) == ["random", "vs_random"]
        # a baseline the grid lacks leaves the ratio undefined rather than borrowing another
        no_random = pd.DataFrame([r for r in rows if r["condition"] != "random"])
        assert study.gain_table(no_random).query("condition == 'vs_random'")["recovered"].isna().all()
    finally:
        CONDITIONS.unregister("vs_random")


@pytest.mark.verl
def test_paper_dry_run_prints_one_verl_job_and_eval_per_cell(tmp_path):
    from mirage.objectives import ESTIMATORS

    lines: list[str] = []
    steps = study.dry_run(study.load_preset("paper"), tmp_path, log=lines.append)
    cells = [s for s in steps if s.kind == "cell"]
    assert len(cells) == 2 * 2 * len(PAPER_CONDITIONS) and not any(s.kind == "history" for s in steps)
    text = "\n".join(lines)
    for s in cells:
        block = text.split(f"cell {s.id} ")[1].split("\n## ")[0]
        job, trains, evaluates = block.splitlines()[1:4]
        assert job.startswith("mirage study --preset paper") and f"condition={s.cell.condition}" in job
        assert "-m verl.trainer.main_ppo" in trains and f"actor_rollout_ref.model.path={s.cell.model}" in trains
        assert f"algorithm.adv_estimator={ESTIMATORS[CONDITIONS[s.cell.condition].estimator].verl_name}" in trains
        assert f"trainer.default_local_dir={s.dir}/checkpoints" in trains
        assert evaluates.startswith("#   evaluates: mirage eval --backend vllm") and "--n 256" in evaluates
    assert not (tmp_path / "runs").exists()  # a dry run writes nothing


def test_a_step_dies_with_its_runner_even_on_kill_9_of_the_runner_alone(tmp_path):
    import os
    import signal
    import subprocess
    import time

    pid_file = tmp_path / "child.pid"
    child = f"import os, time; open({str(pid_file)!r}, 'w').write(str(os.getpid())); time.sleep(120)"
    runner = (f"from pathlib import Path; from mirage import study; "
              f"study.run_steps([study.Step('s', 'cell', Path({str(tmp_path / 's')!r}), "
              f"[{sys.executable!r}, '-c', {child!r}], {{}})])")
    proc = subprocess.Popen([sys.executable, "-c", runner], start_new_session=True)
    t0 = time.time()
    while not pid_file.exists() or not pid_file.read_text():
        assert time.time() - t0 < 60 and proc.poll() is None
        time.sleep(0.1)
    pid = int(pid_file.read_text())
    os.kill(proc.pid, signal.SIGKILL)  # the runner only, not its process group
    proc.wait()
    if wait_for_exit([pid], timeout=10):
        os.kill(pid, signal.SIGKILL)
        raise AssertionError("the step outlived its runner")


def test_a_copied_study_directory_is_still_finished_where_it_was(tmp_path):
    """Results moved from a cluster to a laptop: the analysis can rerun there without retraining."""
    import shutil

    preset = study.load_preset("testbed-ci")
    here = tmp_path / "cluster" / "study"
    cell = next(s for s in study.plan(preset, here) if s.kind == "cell")
    cell.dir.mkdir(parents=True)
    cell.record_path.write_text(json.dumps({"kind": "study-step", "status": "finished", "config": cell.params}))
    assert cell.finished
    there = tmp_path / "laptop" / "study"
    shutil.copytree(here, there)
    moved = next(s for s in study.plan(preset, there) if s.id == cell.id)
    assert moved.params["run_dir"].startswith(str(there.resolve())) and moved.finished
    # a path outside the study directory, or any other value, still has to match
    moved.params["eval"] = {**moved.params["eval"], "n": moved.params["eval"]["n"] + 1}
    assert not moved.finished


def test_one_runner_per_study_directory_and_one_preset_per_directory(tmp_path):
    import subprocess

    from mirage.runs import FolderBusy, FolderLock

    preset = study.load_preset("testbed-ci")
    out = tmp_path / "study"
    # another process holds the study directory, as a running `mirage study` does
    holder = subprocess.Popen([sys.executable, "-c", "import sys, time; from mirage.runs import FolderLock; "
                               f"lock = FolderLock({str(out)!r}, 'study').acquire(); print('locked', flush=True); "
                               "time.sleep(60)"], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(FolderBusy, match=rf"pid {holder.pid} "):
            study.run_study(preset, out, log=lambda line: None)
        # a runner of some cells would run them beside the whole-study runner: refused, naming it
        with pytest.raises(FolderBusy, match=rf"locked by another mirage study runner \(pid {holder.pid} "):
            study.run_study(preset, out, only=study.parse_only("model=dial-90"), log=lambda line: None)
    finally:
        holder.kill()
        holder.wait()
    # a cluster job restricted to some cells locks only its selection
    with FolderLock(out / ".selections" / "other", "another selection"):
        with pytest.raises(ValueError, match="selects no cell"):  # got past the lock, then planned
            study.run_study(preset, out, only=study.parse_only("model=nobody"), log=lambda line: None)
    # the directory now belongs to testbed-ci: another grid is refused, a wording change is not
    (out / "study.json").write_text(json.dumps({"preset": preset.to_dict()}))
    other = study.Preset(**{**preset.__dict__, "seeds": (0, 1)})
    with pytest.raises(ValueError, match="holds a study of another preset"):
        study.run_study(other, out, stage="analysis", log=lambda line: None)
    reworded = study.Preset(**{**preset.__dict__, "description": "new words", "jobs": 2})
    assert study.run_study(reworded, out, stage="analysis", log=lambda line: None) == 1  # nothing to analyse yet


def test_notebook_paths_resolve_from_the_checkout_whatever_the_working_directory(tmp_path, monkeypatch):
    from mirage.study import cell

    root = Path(__file__).resolve().parents[1]
    monkeypatch.delenv("MIRAGE_HOME", raising=False)
    monkeypatch.chdir(tmp_path)
    assert cell.checkout() == root and cell.home() == root
    assert cell.resolve("", "runs/alignment") == root / "runs" / "alignment"
    assert cell.resolve("/abs/where") == Path("/abs/where")
    monkeypatch.setenv("MIRAGE_HOME", str(tmp_path / "home"))
    assert cell.resolve("study/x") == tmp_path / "home" / "study" / "x"
    assert study.notebooks_dir() == root / "notebooks"


def test_stages_select_their_steps(tmp_path):
    steps = study.plan(study.load_preset("testbed-ci"), tmp_path)
    kinds = {stage: {s.kind for s in study.stage_steps(steps, stage)} for stage in study.STAGES}
    assert kinds == {"all": {"measure", "alignment", "history", "cell"}, "alignment": {"measure", "alignment"},
                     "cells": {"history", "cell"}, "analysis": set()}
    with pytest.raises(ValueError, match="stage"):
        study.stage_steps(steps, "figures")


def test_step_entry_point_usage():
    import subprocess

    r = subprocess.run([sys.executable, "-m", "mirage.study", "train", "x.json"], capture_output=True, text=True)
    assert r.returncode == 2 and "measure|history" in r.stderr
