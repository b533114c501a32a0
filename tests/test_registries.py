"""The registries: bad registrations and unknown options fail clearly; a task, a group reward and a
condition added from outside the package run through local training and evaluation like built-in ones."""

import dataclasses
import sys
import textwrap

import numpy as np
import pytest

from mirage import registry, runs
from mirage.conditions import CONDITIONS, Condition, register_condition
from mirage.objectives import ESTIMATORS
from mirage.rewards import REWARDS, Responses, Reward, compute_score, register_reward
from mirage.rewards.checkers import CHECKERS, Checker, Verdict, register_checker
from mirage.rewards.routing import route
from mirage.tasks import TASKS, Task, get_task, load_tasks, register_task


def test_registry_errors_name_the_kind_and_the_known_names():
    reg = registry.Registry("widget")
    reg.register(Task("w1", "testbed", train="a", evals=("b",)))
    with pytest.raises(KeyError, match=r"unknown widget 'w2'; known: w1"):
        reg["w2"]
    with pytest.raises(KeyError, match=r"widget 'w1' is already registered"):
        reg.register(Task("w1", "testbed", train="c", evals=("d",)))
    same = reg["w1"]
    assert reg.register(same) is same  # the very same object again (a module imported twice) is fine
    with pytest.raises(KeyError, match="needs a non-empty name"):
        reg.register(object())


def test_bad_registrations_fail_clearly():
    load_tasks()
    with pytest.raises(KeyError, match=r"task name '\.\./up'"):
        Task("../up", "testbed", train="a", evals=("b",))
    with pytest.raises(KeyError, match="kind must be one of"):
        Task("x", "laptop", train="a", evals=("b",))
    with pytest.raises(KeyError, match=r"data source 'x' names unknown checker 'nope'"):
        register_task(Task("bad-checker", "testbed", train="a", evals=("b",), sources={"x": "nope"}))
    assert "bad-checker" not in TASKS
    with pytest.raises(KeyError, match=r"unknown reward 'no_such_reward'"):
        register_condition(Condition("c1", "RQ1", "no_such_reward"))
    with pytest.raises(KeyError, match=r"unknown estimator 'nope'"):
        register_condition(Condition("c2", "RQ1", "ground_truth", estimator="nope"))
    with pytest.raises(KeyError, match=r"reward_kwargs \['q'\] are neither options of reward 'random'"):
        register_condition(Condition("c3", "RQ1", "random", reward_kwargs={"q": 0.5}))
    assert not {"c1", "c2", "c3"} & set(CONDITIONS)
    with pytest.raises(KeyError, match="a group reward needs rescore="):
        Reward("r", "group")
    with pytest.raises(KeyError, match="needs unknown fields"):
        Reward("r", "group", rescore=lambda r, k: [], needs=("texts",))
    with pytest.raises(KeyError, match=r"option 'math_checker' is already an option of checker 'math'"):
        register_checker(Checker("mine", lambda *a: Verdict(False, None), options=_ClashingOptions))
    assert "mine" not in CHECKERS


@dataclasses.dataclass(frozen=True)
class _ClashingOptions:
    math_checker: str = "x"


def test_unknown_reward_options_name_the_option_and_the_checker():
    with pytest.raises(ValueError, match=r"unknown reward option 'math_chekcer'.*math: math_checker.*"
                                         r"\(scoring data_source 'math500', checker 'math'\)"):
        compute_score("math500", "<think>x</think> <answer>1</answer>", "1", math_chekcer="exact")
    with pytest.raises(ValueError, match=r"checker 'korbench' options .*unknown korbench_mode 'loud'"):
        compute_score("toy-math", "<think>x</think> <answer>1</answer>", "1", korbench_mode="loud")
    with pytest.raises(ValueError, match="unknown reward variant 'majority_vote'"):  # a group reward: not here
        compute_score("toy-math", "x", "1", variant="majority_vote")
    # options verl adds for reward models are not mirage's: dropped, not errors
    assert compute_score("toy-math", "<think>x</think> <answer>1</answer>", "1",
                         reward_router_address=None)["score"] == 1.0
    with pytest.raises(KeyError, match="unknown data_source 'nowhere'"):
        route("nowhere")


def test_every_condition_estimator_and_reward_resolves():
    for name, c in CONDITIONS.items():
        assert c.reward in REWARDS and c.estimator in ESTIMATORS, name
        assert c.baseline in CONDITIONS and c.colour.startswith("#"), name
    assert {r.scope for r in REWARDS.values()} == {"response", "group", "logprob"}


# --- an extension from outside the package ----------------------------------------------------
PLUGIN = textwrap.dedent('''
    """A user's extension: a task (sums of two digits, generated), a group reward, a condition."""
    from mirage.conditions import Condition, register_condition
    from mirage.rewards import Reward, cluster_answers, register_reward
    from mirage.tasks import Task, dataset_path, register_task

    def _ensure(name, root=None):
        import pandas as pd
        from mirage.tasks.toy import INSTRUCTION
        path = dataset_path(name, root)
        if not path.exists():
            n = 32 if name.endswith("_train") else 8
            offset = 0 if name.endswith("_train") else 50
            rows = []
            for i in range(n):
                a, b = divmod(offset + i, 10)
                rows.append({"data_source": "pair-sum", "ability": "math",
                             "prompt": [{"role": "user", "content": f"{INSTRUCTION}\\n\\n{a}+{b}"}],
                             "reward_model": {"style": "rule", "ground_truth": str(a + b)},
                             "extra_info": {"index": i, "split": name.rsplit("_", 1)[1]}})
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame(rows).to_parquet(path)
        return path

    register_task(Task("pair-sum", "testbed", train="pair-sum_train", evals=("pair-sum_test",),
                       sources={"pair-sum": "exact"}, colour="#123456", marker="D", ensure=_ensure))

    def minority_vote(responses, score_kwargs):
        """1 where the format is ok and the answer is the group's LEAST common one."""
        scores = [0.0] * len(responses.group)
        for rows in responses.groups().values():
            labels = cluster_answers([responses.pred[i] for i in rows], responses.data_source[rows[0]])
            counts = {}
            for label in labels:
                if label is not None:
                    counts[label] = counts.get(label, 0) + 1
            if counts:
                least = min(counts, key=lambda label: (counts[label], label))
                for i, label in zip(rows, labels):
                    scores[i] = float(bool(responses.format[i]) and label == least)
        return scores

    register_reward(Reward("minority_vote", "group", rescore=minority_vote,
                           needs=("group", "data_source", "pred", "format")))
    register_condition(Condition("minority_vote", "RQ1", "minority_vote", colour="#654321"))
''')


@pytest.fixture
def plugin(tmp_path, monkeypatch):
    (tmp_path / "plugin_pkg").mkdir()
    (tmp_path / "plugin_pkg" / "my_extension.py").write_text(PLUGIN)
    monkeypatch.syspath_prepend(str(tmp_path / "plugin_pkg"))
    monkeypatch.setenv(registry.PLUGINS_ENV, "my_extension")
    monkeypatch.setenv("PYTHONPATH", str(tmp_path / "plugin_pkg"))  # for subprocesses (study steps)
    registry.load_plugins()
    yield "my_extension"
    for reg, name in ((TASKS, "pair-sum"), (REWARDS, "minority_vote"), (CONDITIONS, "minority_vote")):
        reg.unregister(name)
    registry._LOADED.discard("my_extension")
    sys.modules.pop("my_extension", None)


def test_a_plugin_task_and_group_reward_train_and_evaluate(plugin, tmp_path, monkeypatch):
    from mirage.evaluate import evaluate
    from mirage.train.dispatch import run

    monkeypatch.setenv("MIRAGE_DATA", str(tmp_path / "data"))
    task = get_task("pair-sum")
    assert task.marker == "D" and route("pair-sum").name == "exact"
    cfg = runs.RunConfig("dial-90", "pair-sum", "minority_vote", run_dir=str(tmp_path / "run"),
                         progress=False, dump_rollouts=True,
                         overrides=dict(total_steps=2, train_batch_size=4, rollout_n=4, ppo_mini_batch_size=4,
                                        max_response_length=32, val_freq=2, save_freq=2))
    run_dir = run(cfg)
    manifest = runs.read_manifest(run_dir)
    assert manifest["status"] == "finished" and manifest["condition_spec"]["reward_scope"] == "group"
    # the engine re-scored through the plugin's own function: within a group, the rarest answer wins
    recs = runs.read_jsonl(run_dir / "rollouts" / "1.jsonl")
    groups = {}
    for r in recs:
        groups.setdefault((r["rid"] // 16, r["group"]), []).append(r)
    checked = 0
    for group in groups.values():
        answers = [r["pred"] for r in group if r["format"] and r["pred"]]
        if len(set(answers)) > 1:
            counts = {a: answers.count(a) for a in answers}
            winners = {r["pred"] for r in group if r["score"] == 1}
            assert len(winners) == 1 and counts[next(iter(winners))] == min(counts.values())
            checked += 1
    assert checked > 0
    metrics = runs.load_metrics(run_dir)
    assert (metrics["metric"] == "val-core/pair-sum/acc/mean@1").any()
    table = evaluate(str(runs.list_checkpoints(run_dir)[-1][1]), "pair-sum_test", 4, max_tokens=32,
                     out_dir=tmp_path / "eval", progress=False)
    assert table["k"].tolist() == [1, 2, 4] and np.all((table["pass_at_k"] >= 0) & (table["pass_at_k"] <= 1))


@pytest.mark.slow
def test_a_preset_naming_the_plugin_runs_its_task_and_reward_as_a_study(plugin, tmp_path, monkeypatch):
    """The preset's own `plugins:` key is enough: every step (its own process) loads the extension."""
    from mirage.study import load_preset, run_study
    from mirage.study.results import load_results

    monkeypatch.delenv(registry.PLUGINS_ENV)  # only the preset names it now (PYTHONPATH still finds it)
    monkeypatch.setenv("MIRAGE_DATA", str(tmp_path / "data"))
    preset_file = tmp_path / "pair-sum.yaml"
    preset_file.write_text(textwrap.dedent("""\
        name: pair-sum-study
        backend: local
        plugins: [my_extension]
        models: [dial-90]
        tasks: [pair-sum]
        conditions: [ground_truth, minority_vote]
        seeds: [0]
        recipe: testbed
        overrides: {total_steps: 2, train_batch_size: 4, rollout_n: 4, ppo_mini_batch_size: 4, max_response_length: 32,
                    save_freq: 2, val_freq: 0}
        eval: {n: 4, align_n: 4, checkpoints: last}
        jobs: 1
        """))
    lines = []
    status = run_study(load_preset(preset_file), out=tmp_path / "study", figures_dir=tmp_path / "figures",
                       log=lines.append)
    assert status == 0, "\n".join(lines)
    results = load_results(tmp_path / "study")[0]
    assert set(results["condition"]) >= {"ground_truth", "minority_vote"}
    assert set(results["task"]) == {"pair-sum"} and results["pass_at_k"].between(0, 1).all()
    run_dir = next(p.parent for p in (tmp_path / "study" / "runs").rglob("manifest.json")
                   if "minority_vote" in p.parts)
    assert runs.read_manifest(run_dir)["condition_spec"]["reward_scope"] == "group"
    assert list((tmp_path / "figures").glob("*.png"))  # the analysis notebook drew the plugin's task and condition


def test_condition_colours_are_checked_when_registered():
    """A figure needs one colour per condition, never the base model's: the registry refuses otherwise, so a new
    condition needs no edit elsewhere (and presets take `conditions: all`)."""
    from mirage.conditions import BASE_COLOUR

    for colour, match in [("", "'#rrggbb'"), ("red", "'#rrggbb'"), (BASE_COLOUR, "base model"),
                          (CONDITIONS["random"].colour, "already condition 'random'")]:
        with pytest.raises(KeyError, match=match):
            register_condition(Condition("colourful", "RQ1", "ground_truth", colour=colour))
        assert "colourful" not in CONDITIONS


def test_a_preset_with_conditions_all_takes_every_registered_condition(tmp_path, monkeypatch):
    from mirage import study

    path = tmp_path / "all.yaml"
    path.write_text("name: every\nbackend: local\nmodels: [dial-90]\ntasks: [toy-math]\nconditions: all\n"
                    "seeds: [0]\ngrids: [{}, {conditions: all, seeds: [1]}]\n")
    register_condition(Condition("late_condition", "RQ1", "ground_truth", colour="#13579b"))
    try:
        preset = study.load_preset(str(path))
        assert preset.conditions == tuple(CONDITIONS) and "late_condition" in preset.conditions
        assert {c.condition for c in preset.cells()} == set(CONDITIONS)
    finally:
        CONDITIONS._items.pop("late_condition", None)
