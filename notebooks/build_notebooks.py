"""Write the study's notebooks (stored without outputs) from the cell sources below.

    python notebooks/build_notebooks.py          # rewrite notebooks/*.ipynb
    python notebooks/build_notebooks.py --check  # exit 1 if a notebook differs from its source here

Edit the sources here (or edit a notebook in JupyterLab and port the change back);
tests run ``--check`` so the two never drift apart.
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

HERE = Path(__file__).resolve().parent

# Shared by the three RQ notebooks: the parameters cell and the train/evaluate steps.
RQ_PARAMETERS = '''\
# Parameters (papermill replaces this cell; the defaults run a small case on CPU in a few minutes)
model = "dial-90"          # testbed model name, HF id or local path
task = "toy-math"          # toy-math | toy-logic (testbed); math | logic (verl)
condition = "{condition}"  # see `mirage conditions`
seed = 0
backend = "local"          # local: the CPU testbed's GRPO loop; verl: verl 0.9.1 on GPUs
preset = "interactive"     # which study preset launched this notebook (recorded only)
recipe = "testbed"         # testbed | paper (mirage.conditions.RECIPES)
recipe_overrides = {{}}      # recipe fields to change, e.g. {{"total_steps": 30}}
run_dir = ""               # empty: runs/notebooks/<model>/<task>/<condition>/seed<seed>
eval = {{"n": 16, "temperature": 1.0, "top_p": 1.0, "max_tokens": None, "seed": 0, "checkpoints": "all"}}
alignment_table = ""       # the study's base-model table; empty: evaluate the base model here (step 0)
history_run = ""           # RQ2 one_shot: the ground-truth run whose per-example accuracy is ranked
figures_dir = ""           # empty: <run_dir>/figures
study_dir = ""             # the study directory, when run by `mirage study`
'''

SETUP = '''\
from pathlib import Path

import pandas as pd
from IPython.display import display

from mirage import plots, study
from mirage.conditions import get_condition

plots.style()
run_dir = Path(run_dir or Path("runs/notebooks") / study.safe_name(model) / task / condition / f"seed{seed}")
figures_dir = Path(figures_dir or run_dir / "figures")
cond = get_condition(condition)
print(f"{model} x {task}: condition {condition!r} ({cond.rq}) -- {cond.summary}")
print(f"reward {cond.reward!r}, advantage estimator {cond.estimator!r}, data {cond.data!r}; run dir {run_dir}")
'''

TRAIN = '''\
# Trains, or finds the finished run (an interrupted run resumes from its last checkpoint).
run_dir = study.train_cell(model, task, condition, seed, run_dir, backend=backend, recipe=recipe,
                           recipe_overrides=recipe_overrides, history_run=history_run)
dynamics = study.run_dynamics(run_dir, model=model, task=task, condition=condition, seed=seed)
print(f"{dynamics.step.max()} training steps logged in {run_dir}")
'''

EVALUATE = '''\
# pass@k of the checkpoints (finished evaluations are read back, not resampled), plus the base model.
curves = study.evaluate_cell(run_dir, eval, backend, include_base=not alignment_table)
curves = curves.assign(model=model, task=task, condition=condition, seed=seed)
if alignment_table:
    curves = pd.concat([study.base_curves(alignment_table, model, task), curves], ignore_index=True)
table = study.cell_table(curves)
display(table)
'''

REWARD_VS_ACCURACY = '''\
fig = plots.plot_reward_vs_accuracy(dynamics)
plots.save(fig, "reward_vs_accuracy", figures_dir)
fig
'''

PASSK_FIGURE = '''\
fig = plots.plot_passk_curves(curves)
plots.save(fig, "passk_curves", figures_dir)
fig
'''

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {}

NOTEBOOKS["00_alignment.ipynb"] = [
    ("markdown", """\
# Model-task alignment: how good is each base model on each task before RL?

The paper's central variable. For every base model x task we sample `align_n` responses per
test problem and report the **unbiased pass@k** (Chen et al. 2021) for k = 1, 2, 4, ..., n with
95% bootstrap confidence intervals over problems. Alignment is read at large k: a model that
solves a problem in *some* of many samples already "knows" it; RL then mostly sharpens.

The CPU testbed's models are a dial: `dial-90` learned the correct procedure for toy-math
(strong alignment, like Qwen2.5 on math) and mostly the buggy one for toy-logic; the low dials
are the mirror image (like Llama on math)."""),
    ("parameters", '''\
# Parameters
models = ["dial-10", "dial-90"]    # base models (testbed names, HF ids or paths)
tasks = ["toy-math", "toy-logic"]
backend = "local"                  # local -> HF sampler on CPU; verl -> vLLM on GPUs
eval = {"align_n": 32, "alignment_k": 16, "temperature": 1.0, "top_p": 1.0, "max_tokens": None, "seed": 0}
out_dir = ""                       # empty: runs/alignment
preset = "interactive"
study_dir = ""
'''),
    ("code", '''\
from pathlib import Path

from IPython.display import display

from mirage import plots, study

plots.style()
out_dir = Path(out_dir or "runs/alignment")
# Evaluations are cached per model x task x settings: a rerun only reads them.
table = study.measure_alignment(models, tasks, out_dir, eval, backend)
'''),
    ("markdown", "## The alignment table\nBase pass@1, pass@k at the alignment k (the study's x-axis) and at the "
                 "largest k measured, per model x task."),
    ("code", 'display(plots.alignment_matrix(table, eval.get("alignment_k")).round(3))'),
    ("markdown", "## Base-model pass@k curves"),
    ("code", '''\
fig = plots.plot_alignment(table)
plots.save(fig, "alignment", out_dir / "figures")
fig
'''),
]

NOTEBOOKS["10_rq1_reward_signal.ipynb"] = [
    ("markdown", """\
# RQ1: how critical is the reward signal?

Train one base model on one task under one reward condition (ground truth, random, incorrect,
format only, entropy minimisation, majority vote) and compare pass@k with the base model.
What matters here: the reward the policy **saw** versus the **true** accuracy of the same
samples over training. Under a random or self-generated reward the two come apart; if
accuracy still rises, the model is being sharpened toward what it already knew (strong
alignment), not taught."""),
    ("parameters", RQ_PARAMETERS.format(condition="random")),
    ("code", SETUP),
    ("markdown", "## Train"),
    ("code", TRAIN),
    ("markdown", "## Reward seen vs true accuracy"),
    ("code", REWARD_VS_ACCURACY),
    ("markdown", "## pass@k: base model vs this run's checkpoints"),
    ("code", EVALUATE),
    ("code", PASSK_FIGURE),
]

NOTEBOOKS["20_rq2_one_shot.ipynb"] = [
    ("markdown", """\
# RQ2: is one training example enough?

One-shot RL (Wang et al. 2025) trains on a single example duplicated to fill the batch. The
example is chosen by **historical variance**: in a full-data ground-truth run over a small pool,
record each example's training accuracy per epoch and take the one whose accuracy varied most
(`one_shot`); the control takes a seeded random example (`one_shot_random`). An example the
base model never solves gives zero gradient, so the trick presupposes alignment."""),
    ("parameters", RQ_PARAMETERS.format(condition="one_shot")),
    ("code", SETUP),
    ("markdown", "## Train (selects the example first)"),
    ("code", TRAIN),
    ("markdown", "## The chosen example and its accuracy history"),
    ("code", '''\
choice = study.one_shot_choice(run_dir)
print({k: v for k, v in choice.items() if k != "row"})
print("prompt:", choice["row"]["prompt"][-1]["content"])
print("ground truth:", choice["row"]["reward_model"]["ground_truth"])
if choice.get("history_run"):
    history = study.accuracy_history(choice["history_run"])
    fig = plots.plot_example_history(history, chosen=choice["index"])
    plots.save(fig, "one_shot_history", figures_dir)
    display(fig)
'''),
    ("markdown", "## Training on the one example"),
    ("code", REWARD_VS_ACCURACY),
    ("markdown", "## pass@k on the test set: base model vs this run's checkpoints"),
    ("code", EVALUATE),
    ("code", PASSK_FIGURE),
]

NOTEBOOKS["30_rq3_sample_polarity.ipynb"] = [
    ("markdown", """\
# RQ3: does RL work with only negative (or only positive) samples?

NSR keeps the GRPO advantage only on wrong responses (reward 0), PSR only on correct ones
(the paper's masked definition; masked tokens still count in the token-mean normaliser). The
±1 variants of Zhu et al. drop the other samples instead (`nsr_pm1`, `psr_pm1`,
`w_reinforce`). What matters here: the share of samples that carried a gradient, and how the
policy's entropy moves (NSR tends to keep it high, PSR to collapse it)."""),
    ("parameters", RQ_PARAMETERS.format(condition="nsr")),
    ("code", SETUP),
    ("markdown", "## Train"),
    ("code", TRAIN),
    ("markdown", "## Samples kept, entropy, accuracy"),
    ("code", '''\
fig = plots.plot_metric_panels(dynamics, study.POLARITY_METRICS, f"{condition}: which samples carried a gradient")
plots.save(fig, "sample_polarity", figures_dir)
fig
'''),
    ("markdown", "## pass@k: base model vs this run's checkpoints"),
    ("code", EVALUATE),
    ("code", PASSK_FIGURE),
]

NOTEBOOKS["90_figures.ipynb"] = [
    ("markdown", """\
# The study's figures, from stored results only

Reads `results.parquet`, `dynamics.parquet` and the alignment table of a study directory
(written by `mirage study`) and draws every figure into `figures_dir` as PNG and PDF. Nothing
here trains or samples: rerunning it regenerates the figures from the stored results."""),
    ("parameters", '''\
# Parameters
study_dir = "study/testbed-quick"
figures_dir = ""   # empty: <study_dir>/figures
'''),
    ("code", '''\
from pathlib import Path

import pandas as pd
from IPython.display import display

from mirage import plots, study

plots.style()
figures_dir = Path(figures_dir or Path(study_dir) / "figures")
results, dynamics, alignment = study.load_results(study_dir)
runs = results[results["condition"] != "base"].groupby(["model", "task", "condition", "seed"]).ngroups
print(f"{len(results)} result rows from {runs} trained runs; figures go to {figures_dir}")
'''),
    ("markdown", "## 1. Model-task alignment (base-model pass@k)"),
    ("code", '''\
display(plots.alignment_matrix(alignment, int(results["align_k"].iloc[0])).round(3))
fig = plots.plot_alignment(alignment)
plots.save(fig, "alignment", figures_dir)
fig
'''),
    ("markdown", "## 2. pass@k after RL: base vs each condition (final checkpoint, 95% CI)"),
    ("code", '''\
display(study.summary_table(results).round(3))
fig = plots.plot_passk_curves(results)
plots.save(fig, "passk_curves", figures_dir)
fig
'''),
    ("code", '''\
if results.query("step > 0").groupby(["model", "task", "condition", "seed"])["step"].nunique().max() > 1:
    fig = plots.plot_passk_vs_step(results, k=1)
    plots.save(fig, "pass1_vs_step", figures_dir)
    display(fig)
'''),
    ("markdown", "## 3. Training dynamics: reward, true accuracy, entropy, response length, clip fraction"),
    ("code", '''\
for task in sorted(dynamics["task"].unique()):
    fig = plots.plot_dynamics(dynamics, task)
    plots.save(fig, f"dynamics_{task}", figures_dir)
    display(fig)
'''),
    ("markdown", """\
## 4. The paper's claim: gain recovered vs model-task alignment

For every model x task x condition x seed: the pass@1 gain over the base model, as a fraction of
the gain ground-truth RL achieved on the same model and task,
(pass@1_cond - pass@1_base) / (pass@1_gt - pass@1_base), and the absolute gain, against the base
model's alignment: top row the paper's reading (base pass@k at the alignment k, `align_k` in the
results), bottom row the base pass@1. Where ground-truth RL gained less than `study.MIN_GT_GAIN`
pass@1 the ratio is undefined (two noise-level numbers) and the point appears only in the
absolute-gain panels. If the paper is right, the surprising techniques recover much of the gain
only at high alignment."""),
    ("code", '''\
gains = study.gain_table(results)
display(gains.pivot_table(index=["model", "task", "dataset", "alignment"], columns="condition",
                          values="gain", aggfunc="mean").round(3))
fig = plots.plot_summary(gains, study.MIN_GT_GAIN)
plots.save(fig, "summary_gain_vs_alignment", figures_dir)
fig
'''),
    ("code", '''\
# Does a technique's gain grow with alignment? Spearman correlation across model x task points.
display(study.claim_check(gains).round(3))
'''),
    ("code", 'print("figures:", *sorted(p.name for p in figures_dir.glob("*.png")), sep="\\n  ")'),
]


def build(name: str, cells: list[tuple[str, str]]) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata = {"kernelspec": {"display_name": "Python 3 (ipykernel)", "language": "python", "name": "python3"},
                   "language_info": {"name": "python"}}
    for i, (kind, source) in enumerate(cells):
        if kind == "markdown":
            cell = nbformat.v4.new_markdown_cell(source)
        else:
            cell = nbformat.v4.new_code_cell(source.rstrip("\n"))
            if kind == "parameters":
                cell.metadata["tags"] = ["parameters"]
        cell.id = f"{Path(name).stem[:2]}-{i:02d}"  # stable ids: rebuilding gives identical files
        nb.cells.append(cell)
    nbformat.validate(nb)
    return nb


def main(argv: list[str]) -> int:
    check = "--check" in argv
    stale = []
    for name, cells in NOTEBOOKS.items():
        text = nbformat.writes(build(name, cells)) + "\n"
        path = HERE / name
        if check:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(name)
        else:
            path.write_text(text, encoding="utf-8")
    if stale:
        print(f"notebooks differ from notebooks/build_notebooks.py: {stale}; run it to rebuild", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
