"""The study: presets, a resumable runner that executes the notebooks with papermill, the results tables.

A preset (a YAML file) is a grid (models x tasks x conditions x regimes x seeds, or a union of
sub-grids) plus a recipe, evaluation settings and a backend; ``mirage study --preset P`` turns
it into steps and runs them, resumably, and ends with the results tables and every figure.

    preset.py    Preset, StudyEval, OneShotSettings: the one schema; load_preset, list_presets
    grid.py      the cells of a preset: pairs, regimes, sub-grids and their union
    presets/     the shipped presets: testbed-quick, testbed-seeds, testbed-mechanism, testbed-full,
                 testbed-predictors, testbed-ci, paper
    plan.py      Cell, Step, plan(): the steps in launch order with their dependencies
    runner.py    run_study / run_steps: scheduling, the lock, step records, the dry run, the summary;
                 repair / verify_study: a finished step's outputs read back before it is trusted
    verify.py    what each finished step must have left on disk (check_step, check_tables)
    cell.py      what the notebooks call: cell.run() (train, evaluate, tabulate one cell), alignment
    results.py   results / problems / dynamics tables, gain_table, summary_table, claim_check
    seeds.py     medians over seeds and the two-level (seeds, problems) bootstrap CI
    format_split.py  a pass@1 gain split into "answers better" and "learned the format"
    predictors.py which alignment predictor ranks which gain: the analysis notebook's section
    axis.py      the alignment axis: gain and pass@k change per condition x pair (Holm per condition),
                 within-task rank correlations with exact permutation p, contrasts between conditions
    noise.py     the noise axis: gain per recipe regime and differences between regimes
    regimes.py   tables comparing recipe regimes: per-run gains and clip fractions, steps axis, bandit
    cli.py       the ``mirage study`` subcommand
    __main__.py  ``python -m mirage.study measure|history PARAMS.json`` (the runner's own steps)
"""

from mirage.study import cell
from mirage.study.cli import configure_cli
from mirage.study.plan import (ALIGNMENT_NOTEBOOK, FIGURES_NOTEBOOK, RQ_NOTEBOOKS, STAGES, STEP_RECORD, Cell, Step,
                               notebooks_dir, parse_only, plan, stage_steps)
from mirage.study.preset import OneShotSettings, Preset, PresetError, StudyEval, list_presets, load_preset
from mirage.study.regimes import bandit_runs, bandit_table, procedure_table, regime_summary, run_table, step_gains
from mirage.study.results import (MIN_GT_GAIN, PROBLEM_COLUMNS, RESULT_COLUMNS, alignment_columns, claim_check,
                                  collect, condition_order, describe, eval_rows, final_step_rows, gain_table,
                                  load_problems, load_results, recovered_table, summary_table)
from mirage.study.runner import default_dirs, dry_run, run_steps, run_study, verify_study
from mirage.study.seeds import (ci_table, ci_tables, holm, publish, seed_interval, seed_summaries, seed_summary,
                                 simulate_coverage, two_level_bootstrap)

__all__ = ["cell", "configure_cli", "ALIGNMENT_NOTEBOOK", "FIGURES_NOTEBOOK", "RQ_NOTEBOOKS", "STAGES", "STEP_RECORD",
           "Cell", "Step", "notebooks_dir", "parse_only", "plan", "stage_steps", "OneShotSettings", "Preset",
           "PresetError", "StudyEval", "list_presets", "load_preset", "bandit_runs", "bandit_table", "procedure_table",
           "regime_summary", "run_table", "step_gains", "MIN_GT_GAIN", "PROBLEM_COLUMNS", "RESULT_COLUMNS",
           "alignment_columns",
           "claim_check", "collect", "condition_order", "describe", "eval_rows", "final_step_rows", "gain_table",
           "load_problems", "load_results", "recovered_table", "summary_table", "default_dirs", "dry_run", "run_steps",
           "run_study", "verify_study", "ci_table", "ci_tables", "publish", "seed_summaries", "seed_summary",
           "two_level_bootstrap", "seed_interval", "holm", "simulate_coverage"]
