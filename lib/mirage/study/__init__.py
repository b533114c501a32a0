"""The study: presets, a resumable runner that executes the notebooks with papermill, the results tables.

A preset (a YAML file) is a grid (models x tasks x conditions x seeds) plus a recipe,
evaluation settings and a backend; ``mirage study --preset P`` turns it into steps and
runs them, resumably, and ends with the results tables and every figure.

    preset.py    Preset, StudyEval, OneShotSettings: the one schema; load_preset, list_presets
    presets/     the shipped presets: testbed-quick, testbed-full, testbed-ci, paper
    plan.py      Cell, Step, plan(): the steps in launch order with their dependencies
    runner.py    run_study / run_steps: scheduling, the lock, step records, the dry run, the summary
    cell.py      what the notebooks call: cell.run() (train, evaluate, tabulate one cell), alignment
    results.py   results.parquet / dynamics.parquet, gain_table, summary_table, claim_check
    cli.py       the ``mirage study`` subcommand
    __main__.py  ``python -m mirage.study measure|history PARAMS.json`` (the runner's own steps)
"""

from mirage.study import cell
from mirage.study.cli import configure_cli
from mirage.study.plan import (ALIGNMENT_NOTEBOOK, FIGURES_NOTEBOOK, RQ_NOTEBOOKS, STAGES, STEP_RECORD, Cell, Step,
                               notebooks_dir, parse_only, plan, stage_steps)
from mirage.study.preset import OneShotSettings, Preset, PresetError, StudyEval, list_presets, load_preset
from mirage.study.results import (MIN_GT_GAIN, RESULT_COLUMNS, alignment_columns, claim_check, collect, describe,
                                  condition_order, final_step_rows, gain_table, load_results, recovered_table,
                                  summary_table)
from mirage.study.runner import default_dirs, dry_run, run_steps, run_study

__all__ = ["cell", "configure_cli", "ALIGNMENT_NOTEBOOK", "FIGURES_NOTEBOOK", "RQ_NOTEBOOKS", "STAGES", "STEP_RECORD",
           "Cell", "Step", "notebooks_dir", "parse_only", "plan", "stage_steps", "OneShotSettings", "Preset",
           "PresetError", "StudyEval", "list_presets", "load_preset", "MIN_GT_GAIN", "RESULT_COLUMNS",
           "alignment_columns", "claim_check", "collect", "describe", "condition_order", "final_step_rows", "gain_table",
           "load_results", "recovered_table", "summary_table", "default_dirs", "dry_run", "run_steps", "run_study"]
