"""Every figure of the study, each a function of tidy frames.

Inputs are the study's stored tables (see ``mirage.study.results``):

* ``results``   one row per model x task x condition x seed x step x dataset x k
                (pass_at_k, ci_low, ci_high, n_problems, align_* columns); step 0 is the base model.
* ``dynamics``  ``mirage.runs.load_metrics`` rows (step, metric, value, model, task, condition, seed).
* ``alignment`` the base models' pass@k table (model, task, dataset, k, pass_at_k, ci_low, ci_high).
* ``gains``     ``mirage.study.gain_table(results)``.

Nothing here trains, samples or reads files other than what it is handed; ``save``
writes PNG + PDF. A condition's colour is its registry entry's (``Condition.colour``), a
task's marker its entry's (``Task.marker``), conditions appear in registry order: a
plugin's condition or task looks the same in every figure without touching this package.

    base.py      style, colours and markers from the registries, save, shared helpers
    curves.py    alignment curves and matrix, pass@k curves, pass@k over checkpoints
    dynamics.py  training metrics over steps, reward seen vs true accuracy, one-shot history
    summary.py   the paper's claim: gain vs alignment (a point per seed, lines through the medians)
    mechanism.py the clipping-bias figures: the bandit, gain vs clip fraction and vs step, procedure
                 shares, per-seed gain distributions per regime
    predictors.py which alignment measure predicts which gain: rho with its CI per condition
    format_channel.py  the format dial: each gain split into learned format and better answers
    axis.py      the alignment axis (gain vs base pass@k per task) and the noise axis (gain per regime)
"""

from mirage.plots.base import BASE_COLOUR, color, condition_order, save, save_all, style, task_marker, task_order
from mirage.plots.curves import (alignment_matrix, base_rows, final_step_rows, plot_alignment, plot_passk_curves,
                                 plot_passk_vs_step, step_figures)
from mirage.plots.dynamics import (DYNAMICS_METRICS, POLARITY_METRICS, dynamics_figures, plot_dynamics,
                                   plot_example_history, plot_metric_panels, plot_reward_vs_accuracy)
from mirage.plots.mechanism import (mechanism_figures, plot_bandit, plot_gain_distributions, plot_gain_vs_clipfrac,
                                    plot_gain_vs_step, plot_procedure_shares, regime_styles)
from mirage.plots.predictors import plot_predictor_correlations, plot_predictor_outcomes
from mirage.plots.summary import plot_summary

__all__ = ["BASE_COLOUR", "color", "condition_order", "save", "save_all", "style", "task_marker", "task_order",
           "alignment_matrix", "base_rows", "final_step_rows", "plot_alignment", "plot_passk_curves",
           "plot_passk_vs_step", "step_figures", "DYNAMICS_METRICS", "POLARITY_METRICS", "dynamics_figures",
           "plot_dynamics", "plot_example_history", "plot_metric_panels", "plot_reward_vs_accuracy", "plot_summary",
           "mechanism_figures", "plot_bandit", "plot_gain_distributions", "plot_gain_vs_clipfrac", "plot_gain_vs_step",
           "plot_procedure_shares", "regime_styles", "plot_predictor_correlations", "plot_predictor_outcomes"]
