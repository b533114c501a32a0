"""mirage.evaluate.predictors: each alignment predictor on hand-made samples, the saturation flag, the
rank correlation and its bootstrap on tables whose answer is known, and old evaluation folders (no
sum_neg_logprob column) that still load and resume."""

from __future__ import annotations

from typing import TYPE_CHECKING

import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from mirage.sample.base import Completion, Sampler
from mirage.tasks import toy

if TYPE_CHECKING:  # annotations only: the tests import it where they use it
    import pandas as pd


def samples(preds_by_problem: dict[str, list], gt: dict[str, str] | None = None, source: str = "toy-math",
            fmt: float = 1.0, nlp=None, tokens: int = 4) -> pd.DataFrame:
    """Sample rows of one dataset: problem -> its samples' preds (None: no answer)."""
    import pandas as pd

    rows = []
    for pid, preds in preds_by_problem.items():
        truth = (gt or {}).get(pid, "1")
        for i, p in enumerate(preds):
            rows.append({"dataset": "d", "problem_id": pid, "data_source": source, "sample_index": i, "pred": p,
                         "correct": p is not None and p.strip() == truth, "ground_truth": truth, "format": fmt,
                         "num_tokens": tokens, "sum_neg_logprob": nlp if nlp is not None else float("nan")})
    return pd.DataFrame(rows)


def one(frame: pd.DataFrame, problems=None) -> pd.Series:
    from mirage.evaluate import predictors as pr

    table = pr.predictor_table(frame, problems)
    assert len(table) == 1 and list(table.columns) == pr.PREDICTOR_COLUMNS
    return table.iloc[0]


# --- the predictors ---------------------------------------------------------------------------
def test_majority_share_and_maj_at_n_count_empty_answers_in_n_but_never_as_the_majority():
    row = one(samples({
        "a": ["1", "1", "1", "2"],        # majority right, share 3/4
        "b": ["2", "2", None, "1"],       # majority wrong, share 2/4 (the empty answer stays in n)
        "c": [None, None, None, "3"],     # one answer: majority of 1/4, wrong
    }))
    assert row["majority_share"] == pytest.approx((3 / 4 + 2 / 4 + 1 / 4) / 3)
    assert row["maj_at_n"] == pytest.approx((1 + 0 + 0) / 3)
    assert row["n"] == 4 and row["n_problems"] == 3


def test_all_empty_answers_give_zero_share_and_zero_maj_at_n():
    row = one(samples({"a": [None, "", "  "], "b": [None, None, None]}))
    assert row["majority_share"] == 0 and row["maj_at_n"] == 0 and row["pass_at_1"] == 0


def test_a_tie_counts_the_share_of_tied_clusters_that_are_right():
    row = one(samples({"a": ["1", "1", "2", "2"],          # tie right / wrong: 1/2
                       "b": ["1", "2", "3", "4"],          # four-way tie, one right: 1/4
                       "c": ["2", "2", "3", "3"]}))        # tie of two wrong: 0
    assert row["majority_share"] == pytest.approx(0.5 * 2 / 3 + 0.25 / 3)
    assert row["maj_at_n"] == pytest.approx((0.5 + 0.25 + 0) / 3)


def test_answers_are_clustered_by_the_tasks_checker():
    # the testbed compares stripped strings: " 7" and "7" are one answer
    from mirage.evaluate import predictors as pr

    share, right = pr.majority([" 7", "7", "8"], [True, True, False], "toy-math")
    assert (share, right) == (pytest.approx(2 / 3), 1.0)


def test_n_of_one_has_no_saturation_gap():
    import pandas as pd

    row = one(samples({"a": ["1"], "b": ["2"]}))
    assert row["n"] == 1 and row["pass_at_1"] == row["pass_at_n"] == row["pass_at_half"] == 0.5
    assert math.isnan(row["saturation_gap"]) and pd.isna(row["saturated"]) and row["k_knee"] == 1
    assert row["majority_share"] == 1.0 and row["maj_at_n"] == 0.5


def test_saturation_flag_and_knee_on_known_curves():
    # every problem solved once in 8: pass@k = k / 8, far from flat at n
    import pandas as pd

    from mirage.evaluate import predictors as pr

    rising = one(samples({p: ["1"] + ["0"] * 7 for p in "abcd"}))
    assert rising["pass_at_half"] == pytest.approx(0.5) and rising["pass_at_n"] == 1.0
    assert rising["saturation_gap"] == pytest.approx(0.5) and not rising["saturated"] and rising["k_knee"] == 8
    # half the problems always solved, half never: flat from k = 1
    flat = one(samples({"a": ["1"] * 8, "b": ["1"] * 8, "c": ["0"] * 8, "d": ["0"] * 8}))
    assert flat["saturation_gap"] == 0 and flat["saturated"] and flat["k_knee"] == 1
    # pass@8 - pass@4 just under and just over the 0.01 threshold
    c = np.array([7] + [0] * 3)   # one problem 7/8: pass@4 = 1, so the gap is 0
    assert pr.passk_predictors(pd.DataFrame({"n": 8, "c": c}))["saturated"]
    many = pd.DataFrame({"n": 8, "c": [1] * 3 + [8] * 97})  # gap = 3 * 0.5 / 100 = 0.015
    got = pr.passk_predictors(many)
    assert got["saturation_gap"] == pytest.approx(0.015) and not got["saturated"]
    few = pd.DataFrame({"n": 8, "c": [1] * 1 + [8] * 99})  # gap 0.005
    assert pr.passk_predictors(few)["saturated"]


def test_passk_predictors_refuse_mixed_n():
    import pandas as pd

    from mirage.evaluate import predictors as pr

    with pytest.raises(ValueError, match="same n"):
        pr.passk_predictors(pd.DataFrame({"n": [4, 8], "c": [1, 1]}))


def test_token_entropy_is_token_weighted_per_problem_and_nan_without_logprobs():
    frame = samples({"a": ["1", "2"], "b": ["1", "1"]}, nlp=2.0, tokens=4)
    frame.loc[frame["problem_id"] == "b", "sum_neg_logprob"] = [1.0, 3.0]
    frame.loc[frame["problem_id"] == "b", "num_tokens"] = [1, 3]
    assert one(frame)["mean_token_entropy"] == pytest.approx((4 / 8 + 4 / 4) / 2)
    assert math.isnan(one(samples({"a": ["1", "2"]}))["mean_token_entropy"])  # a sampler without log-probs
    partial = samples({"a": ["1", "2"]}, nlp=1.0)
    partial.loc[0, "sum_neg_logprob"] = float("nan")  # one sample without: not a partial average
    assert math.isnan(one(partial)["mean_token_entropy"])


def test_sum_neg_logprob_from_per_token_logprobs_or_their_sum():
    from mirage.evaluate.core import sum_neg_logprob
    from mirage.sample.base import Completion

    assert sum_neg_logprob(Completion("ab", "stop", 2, logprobs=[-0.5, -1.5])) == 2.0  # testbed / HF
    assert sum_neg_logprob(Completion("ab", "stop", 2, cumulative_logprob=-2.5)) == 2.5  # vLLM
    assert math.isnan(sum_neg_logprob(Completion("ab", "stop", 2)))  # neither: NaN, not 0
    assert math.isnan(sum_neg_logprob(Completion("ab", "stop", 2, logprobs=[-0.5])))  # a short list is wrong
    assert math.isnan(sum_neg_logprob(Completion("ab", "stop", 2, cumulative_logprob=float("-inf"))))


def test_token_entropy_estimates_a_known_distribution():
    """-log p of tokens drawn from a known distribution averages to its entropy."""
    rng = np.random.default_rng(0)
    p = np.array([0.5, 0.25, 0.125, 0.125])
    draws = rng.choice(len(p), size=(2000, 8), p=p)
    nlp = -np.log(p[draws]).sum(axis=1)
    frame = samples({str(i): ["1"] * 8 for i in range(250)}, nlp=0.0, tokens=8)
    frame["sum_neg_logprob"] = nlp
    entropy = -(p * np.log(p)).sum()
    assert one(frame)["mean_token_entropy"] == pytest.approx(entropy, rel=0.02)


def test_format_rate_is_the_mean_format():
    frame = samples({"a": ["1", "1", "2", "2"]})
    frame["format"] = [1.0, 0.0, 1.0, 1.0]
    assert one(frame)["format_rate"] == 0.75


def test_procedure_shares_on_the_testbed_and_nan_elsewhere():
    problems = toy.problems_frame("toy-math", "test", 2, seed=1)
    frame = problems.assign(problem_id=[str(r["index"]) for r in problems["extra_info"]],
                            ground_truth=[r["ground_truth"] for r in problems["reward_model"]])
    buggy = dict(zip(frame["problem_id"], [r["buggy_answer"] for r in frame["extra_info"]]))
    gt = dict(zip(frame["problem_id"], frame["ground_truth"]))
    a, b = list(gt)
    rows = samples({a: [gt[a], buggy[a], "x", None], b: [buggy[b], buggy[b], gt[b], gt[b]]}, gt=gt)
    table = frame[["problem_id", "extra_info"]]
    row = one(rows, {"d": table})
    assert (row["procedure_correct"], row["procedure_buggy"], row["procedure_neither"]) == (3 / 8, 3 / 8, 2 / 8)
    assert row["procedure_correct"] == pytest.approx(row["pass_at_1"])
    assert math.isnan(one(rows)["procedure_buggy"])  # without the problems' extra_info
    assert math.isnan(one(rows.assign(data_source="math500"), {"d": table})["procedure_buggy"])  # not the testbed


def test_an_empty_sample_frame_is_an_error():
    import pandas as pd

    from mirage import evaluate as ev
    from mirage.evaluate import predictors as pr

    with pytest.raises(ValueError, match="no samples"):
        pr.predictor_table(pd.DataFrame(columns=ev.core.SAMPLE_COLUMNS))


# --- rank correlation -------------------------------------------------------------------------
def test_average_ranks_share_ties():
    from mirage.evaluate import predictors as pr

    assert pr.average_ranks(np.array([[3.0, 1.0, 3.0, 2.0]])).tolist() == [[3.5, 1.0, 3.5, 2.0]]


def test_spearman_is_one_for_a_monotone_relation_and_minus_one_reversed():
    from mirage.evaluate import predictors as pr

    x = np.array([[0.1, 0.5, 0.2, 0.9, 0.3]])
    assert pr.spearman_rows(x, x ** 3)[0] == pytest.approx(1.0)
    assert pr.spearman_rows(x, -np.exp(x))[0] == pytest.approx(-1.0)
    assert math.isnan(pr.spearman_rows(x, np.ones_like(x))[0])


def test_bootstrap_ci_is_tight_for_a_clean_relation_and_spans_zero_for_noise():
    from mirage.evaluate import predictors as pr

    x = np.linspace(0, 1, 10)
    clean = pr.rank_correlation(x, [[2 * v + e for e in (-0.01, 0.0, 0.01)] for v in x], n_boot=500)
    assert clean["rho"] == pytest.approx(1.0) and clean["ci_low"] > 0.8 and clean["n_pairs"] == 10
    assert clean["n_seeds"] == 3
    rng = np.random.default_rng(1)
    noise = pr.rank_correlation(x, [rng.normal(size=3) for _ in x], n_boot=500)
    assert noise["ci_low"] < 0 < noise["ci_high"]
    # seeds matter: a relation hidden under seed noise comes out with a wide CI
    loud = pr.rank_correlation(x, [[v + 5 * e for e in (-1, 1)] for v in x], n_boot=500)
    assert loud["ci_high"] - loud["ci_low"] > clean["ci_high"] - clean["ci_low"]


def test_rank_correlation_is_deterministic_for_a_seed():
    from mirage.evaluate import predictors as pr

    x = [0.1, 0.4, 0.2, 0.8]
    ys = [[0.0, 0.1], [0.3, 0.2], [0.1, 0.1], [0.5, 0.9]]
    assert pr.rank_correlation(x, ys, n_boot=200, seed=5) == pr.rank_correlation(x, ys, n_boot=200, seed=5)
    assert pr.rank_correlation(x, ys, n_boot=200, seed=5) != pr.rank_correlation(x, ys, n_boot=200, seed=6)


def _gains(outcome_of, conditions=("ground_truth", "random"), seeds=(0, 1, 2)):
    """A made-up gain table: pair i's gain for a condition is outcome_of(condition, i) (+ seed jitter)."""
    import pandas as pd

    rows = []
    for i in range(8):
        for c in conditions:
            for s in seeds:
                rows.append({"model": f"m{i}", "task": "t", "dataset": "d", "condition": c, "regime": "",
                             "baseline": "ground_truth", "seed": s, "gain": outcome_of(c, i) + 0.001 * s})
    g = pd.DataFrame(rows)
    gt = g[g.condition == "ground_truth"].set_index(["model", "seed"])["gain"]
    g["baseline_gain"] = [gt[(m, s)] for m, s in zip(g["model"], g["seed"])]
    return g


def test_correlations_find_the_predictor_that_made_the_outcome():
    """random's gain beyond ground truth grows with the majority share and does not depend on entropy;
    ground truth's own gain falls with pass@1."""
    import pandas as pd

    from mirage.evaluate import predictors as pr

    rng = np.random.default_rng(0)
    predictors = pd.DataFrame({"model": [f"m{i}" for i in range(8)], "task": "t", "dataset": "d",
                               "pass_at_1": np.linspace(0.1, 0.9, 8), "majority_share": rng.permutation(8) / 8,
                               "mean_token_entropy": rng.permutation(8) / 8, "format_rate": 1.0})
    share = dict(zip(predictors["model"], predictors["majority_share"]))
    p1 = dict(zip(predictors["model"], predictors["pass_at_1"]))
    gains = _gains(lambda c, i: 1 - p1[f"m{i}"] if c == "ground_truth" else 1 - p1[f"m{i}"] + share[f"m{i}"])
    table = pr.predictor_correlations(predictors, gains, n_boot=400)
    assert list(table.columns) == pr.CORRELATION_COLUMNS
    at = table.set_index(["condition", "predictor"])
    assert at.loc[("ground_truth", "pass_at_1"), "rho"] == pytest.approx(-1.0)
    assert at.loc[("ground_truth", "pass_at_1"), "outcome"] == "gain over base"
    assert at.loc[("random", "majority_share"), "rho"] == pytest.approx(1.0)
    assert at.loc[("random", "majority_share"), "ci_low"] > 0.7
    assert at.loc[("random", "majority_share"), "outcome"] == "gain - ground_truth gain"
    assert abs(at.loc[("random", "mean_token_entropy"), "rho"]) < 0.8  # an unrelated permutation
    assert math.isnan(at.loc[("random", "format_rate"), "rho"])  # constant over the pairs: no rank
    assert at.loc[("random", "pass_at_1"), "n_pairs"] == 8 and at.loc[("random", "pass_at_1"), "n_seeds"] == 3
    assert set(table["predictor"]) == {"pass_at_1", "majority_share", "mean_token_entropy", "format_rate"}


def test_a_predictor_missing_for_some_pair_has_no_rho_and_duplicates_are_refused():
    import pandas as pd

    from mirage.evaluate import predictors as pr

    predictors = pd.DataFrame({"model": [f"m{i}" for i in range(8)], "task": "t", "dataset": "d",
                               "pass_at_1": np.linspace(0, 1, 8), "mean_token_entropy": [np.nan] + [1.0] * 7})
    table = pr.predictor_correlations(predictors, _gains(lambda c, i: i), n_boot=50)
    assert table["rho"][table["predictor"] == "mean_token_entropy"].isna().all()
    with pytest.raises(ValueError, match="appears twice"):
        pr.predictor_correlations(pd.concat([predictors, predictors.head(1)]), _gains(lambda c, i: i))


# --- the predictors re-asked: two outcomes, per task, models as clusters ------------------------------------------
def _two_task_gains(gt_gain, cond_gain, models=8, seeds=(0, 1, 2), jitter=0.0):
    """A gain table over models m0..m{models-1} x tasks a, b: ground truth gains gt_gain(model i, task) and the
    technique "random" cond_gain(i, task), the same in every seed except a seed jitter."""
    import pandas as pd
    rows = []
    for i in range(models):
        for task in ("a", "b"):
            for s in seeds:
                gt = gt_gain(i, task) + jitter * (s - 1)
                rows.append({"model": f"m{i}", "task": task, "dataset": f"{task}_test", "condition": "ground_truth",
                             "regime": "", "seed": s, "baseline": "ground_truth", "gain": gt, "baseline_gain": gt})
                rows.append({"model": f"m{i}", "task": task, "dataset": f"{task}_test", "condition": "random",
                             "regime": "", "seed": s, "baseline": "ground_truth",
                             "gain": cond_gain(i, task) + jitter * (1 - s) * 0.5, "baseline_gain": gt})
    return pd.DataFrame(rows)


def _two_task_predictors(value, models=8):
    import pandas as pd
    return pd.DataFrame([{"model": f"m{i}", "task": t, "dataset": f"{t}_test", "pass_at_1": value(i, t)}
                         for i in range(models) for t in ("a", "b")])


def test_stratified_rho_ignores_a_difference_between_tasks_that_a_pooled_rho_turns_into_a_correlation():
    """Task b's pairs have a higher predictor and a higher outcome than task a's, while within each task the
    outcome is unrelated to the predictor (rho exactly 0): pooled over the 10 pairs Spearman's rho is strong,
    the within-task one is 0."""
    from mirage.evaluate import predictors as pr
    x = np.array([1, 2, 3, 4, 5, 11, 12, 13, 14, 15], float)
    y = np.array([2, 5, 3, 1, 4, 12, 15, 13, 11, 14], float)  # within each task: ranks 2 5 3 1 4, rho 0
    tasks = np.array(["a"] * 5 + ["b"] * 5)
    assert pr.spearman_rows(x[None], y[None])[0] > 0.7
    assert pr.stratified_spearman(x[None], y[None], tasks)[0] == pytest.approx(0.0, abs=1e-12)
    assert pr.stratified_spearman(x[None, :5], y[None, :5], tasks[:5])[0] == pytest.approx(
        pr.spearman_rows(x[None, :5], y[None, :5])[0])  # one stratum: Spearman's rho
    # the same through predictor_outcomes: per task 0, within-task 0, though a pooled rank would be strong
    models = 5
    gains = _two_task_gains(lambda i, t: 0.5, lambda i, t: 0.5 + 0.01 * y[i + (5 if t == "b" else 0)], models=models)
    table = pr.predictor_outcomes(_two_task_predictors(lambda i, t: x[i + (5 if t == "b" else 0)], models), gains,
                                  n_boot=200)
    row = table[(table.condition == "random") & (table.outcome == "gain_minus_baseline")].set_index("stratum")
    assert list(row.index) == ["a", "b", pr.STRATIFIED]
    assert row["rho"].abs().max() < 1e-12 and (row.loc[pr.STRATIFIED, "n_pairs"], row.loc["a", "n_pairs"]) == (10, 5)
    assert (row["n_models"] == 5).all()


def test_two_test_sets_of_one_task_are_two_strata():
    """A task evaluated on two test sets (the contamination study's leaked and fresh sets): each set is its own
    stratum, so pairs of different test sets are never ranked together."""
    from mirage.evaluate import predictors as pr
    x = np.array([1, 2, 3, 4, 5, 11, 12, 13, 14, 15], float)
    gains = _two_task_gains(lambda i, t: 0.5, lambda i, t: 0.5 + 0.01 * x[i + (5 if t == "b" else 0)], models=5)
    gains = gains.assign(task="t")
    predictors = _two_task_predictors(lambda i, t: x[i + (5 if t == "b" else 0)], 5).assign(task="t")
    table = pr.predictor_outcomes(predictors, gains, n_boot=100)
    strata = list(dict.fromkeys(table.loc[table.condition == "random", "stratum"]))
    assert strata == ["t/a_test", "t/b_test", pr.STRATIFIED]


def test_resampling_models_as_clusters_is_wider_than_resampling_pairs_when_a_model_repeats_across_tasks():
    """Each model has the same predictor and outcome on both tasks: its two pairs are one observation, not
    two. Resampling pairs treats them as independent and halves the variance of the within-task rho; resampling
    models keeps them together, so its CI is wider."""
    from mirage.evaluate import predictors as pr
    rng = np.random.default_rng(3)
    xs, ys = rng.normal(size=8), rng.normal(size=8)
    ys = 0.6 * xs + ys
    gains = _two_task_gains(lambda i, t: 1.0, lambda i, t: 1.0 + ys[i], jitter=0.0)
    predictors = _two_task_predictors(lambda i, t: xs[i])
    widths = {}
    for cluster in ("model", "pair"):
        t = pr.predictor_outcomes(predictors, gains, n_boot=2000, cluster=cluster)
        t = t[(t.condition == "random") & (t.outcome == "gain_minus_baseline")].set_index("stratum")
        assert (t["cluster"] == cluster).all()
        assert t.loc["a", "rho"] == pytest.approx(t.loc[pr.STRATIFIED, "rho"])  # both tasks are the same
        widths[cluster] = t.loc[pr.STRATIFIED, "ci_width"]
    assert widths["model"] > 1.2 * widths["pair"], widths
    with pytest.raises(ValueError, match="cluster 'seed'"):
        pr.cluster_bootstrap(np.ones((1, 3)), [[1.0]] * 3, [[1.0]] * 3, "aaa", "xyz", "gain_minus_baseline",
                             cluster="seed")


def test_the_fraction_recovered_is_asked_only_where_ground_truth_gained_enough():
    """Ground truth gains 0.01 on two of task a's pairs: those leave the fraction outcome (not the
    difference); the fraction is mean gain / ground truth's mean gain, the difference their difference."""
    from mirage.evaluate import predictors as pr
    gt = lambda i, t: 0.01 if (t == "a" and i < 2) else 0.1 + 0.05 * i  # noqa: E731
    gains = _two_task_gains(gt, lambda i, t: 0.5 * gt(i, t) * (1 + i / 10), models=6)
    table = pr.predictor_outcomes(_two_task_predictors(lambda i, t: i / 10, 6), gains, n_boot=200)
    at = table[table.condition == "random"].set_index(["outcome", "stratum"])
    assert at.loc[("fraction_recovered", "a"), "n_pairs"] == 4 and at.loc[("gain_minus_baseline", "a"), "n_pairs"] == 6
    assert at.loc[("fraction_recovered", pr.STRATIFIED), "n_pairs"] == 10
    assert at.loc[("fraction_recovered", "a"), "rho"] == pytest.approx(1.0)  # 0.5 (1 + i/10) grows with i
    assert set(table.loc[table.condition == "ground_truth", "outcome"]) == {"baseline_gain"}


def test_the_reading_follows_the_width_of_the_interval():
    from mirage.evaluate import predictors as pr
    assert pr.reading(-0.7, 0.8) == "uninformative"  # spans most of [-1, 1]: never a null
    assert pr.reading(0.1, 0.9) == "positive" and pr.reading(-0.9, -0.2) == "negative"
    assert pr.reading(-0.3, 0.4) == "not established" and pr.reading(float("nan"), 0.2) == "n/a"
    # a bootstrap CI that excludes 0 while the exact permutation p does not reach 0.05 (4-5 clusters): not a sign
    assert pr.reading(0.7, 1.0, p=0.5) == "not established" and pr.reading(0.7, 1.0, p=0.0167) == "positive"


def test_the_permutation_p_is_exact_for_small_strata_and_tells_a_perfect_ranking_from_none():
    from mirage.evaluate import predictors as pr
    x = np.arange(5.0)
    assert pr.permutation_p(x, x, ["a"] * 5) == pytest.approx(2 / 120)  # only the ranking and its reverse
    assert pr.permutation_p(np.tile(x, 2), np.tile(x, 2), ["a"] * 5 + ["b"] * 5) == pytest.approx(2 / 14400)
    assert pr.permutation_p(x, np.array([2, 5, 3, 1, 4.0]), ["a"] * 5) == 1.0  # rho 0: every permutation as extreme
    big = np.arange(12.0)
    p = pr.permutation_p(big, big, ["a"] * 12, n_random=2000)  # 12! permutations: sampled
    assert p <= 0.002
    assert math.isnan(pr.permutation_p(x, np.ones(5), ["a"] * 5))


def test_the_committed_outcome_table_is_recomputed_from_the_committed_tables(tmp_path):
    """figures/testbed-predictors/predictor_outcomes.csv is what committed_outcomes computes from the
    results.csv and predictors.csv beside it, byte for byte (scripts/predictor_outcomes.py writes it)."""
    from mirage.evaluate import predictors as pr
    from mirage.study.predictors import committed_outcomes, write_csv

    folder = Path(__file__).resolve().parents[1] / "figures" / "testbed-predictors"
    table = committed_outcomes(folder)
    out = write_csv(table, tmp_path / "o.csv")
    assert out.read_bytes() == (folder / "predictor_outcomes.csv").read_bytes()
    # its shape: 11 predictors x (1 ground-truth outcome + 4 techniques x 2) x (2 tasks + within-task)
    assert len(table) == 11 * 9 * 3 and set(table["cluster"]) == {"model"}
    assert set(table["reading"]) <= {"uninformative", "positive", "negative", "not established", "n/a"}
    wide = table["ci_width"] > pr.UNINFORMATIVE_WIDTH
    assert (table.loc[wide, "reading"] == "uninformative").all()
    signed = table["reading"].isin(["positive", "negative"])
    assert (table.loc[signed, "p_perm"] < 0.05).all() and (table.loc[signed, "ci_width"] <= pr.UNINFORMATIVE_WIDTH).all()
    with pytest.raises(FileNotFoundError, match="predictors.csv"):
        committed_outcomes(tmp_path)


# --- old evaluation folders --------------------------------------------------------------------
class ScriptSampler(Sampler):
    """Answers every problem with its ground truth, with or without log-probs."""

    backend = "fake"

    def __init__(self, answers: dict[str, str], logprobs: bool):
        self.answers, self.logprobs = answers, logprobs

    def generate(self, prompts, params, seeds):
        out = []
        for messages in prompts:
            text = f"<think>s</think> <answer>{self.answers[messages[-1]['content']]}</answer>"
            lps = [-0.5] * 4 if self.logprobs else None
            out.append([Completion(text, "stop", 4, logprobs=lps) for _ in range(params.n)])
        return out


def test_an_old_folder_without_the_logprob_column_loads_resumes_and_gives_nan_entropy(tmp_path):
    import pandas as pd

    from mirage import evaluate as ev
    from mirage.evaluate import predictors as pr

    path = tmp_path / "toy.parquet"
    frame = toy.problems_frame("toy-math", "test", 6, seed=2)
    frame.to_parquet(path)
    answers = dict(zip([p[-1]["content"] for p in frame["prompt"]], [r["ground_truth"] for r in frame["reward_model"]]))
    out = tmp_path / "eval"
    kw = dict(out_dir=out, batch_size=2, score_processes=0, progress=False)
    ev.evaluate("fake", str(path), 4, sampler=ScriptSampler(answers, True), **kw)
    parts = sorted((out / "samples").rglob("part-*.parquet"))
    assert len(parts) == 3
    for part in parts[:2]:  # as written before the column existed; the last chunk is "lost in a kill"
        pd.read_parquet(part).drop(columns="sum_neg_logprob").to_parquet(part)
    parts[2].unlink()
    old = ev.read_samples(out)
    assert list(old.columns) == ev.core.SAMPLE_COLUMNS and old["sum_neg_logprob"].isna().all() and len(old) == 16
    assert math.isnan(pr.predictor_table(old)["mean_token_entropy"].iloc[0])
    # the resume samples only the missing chunk, with the column; the mix reads back
    table = ev.evaluate("fake", str(path), 4, sampler=ScriptSampler(answers, True), **kw)
    mixed = ev.read_samples(out)
    assert len(mixed) == 24 and mixed["sum_neg_logprob"].notna().sum() == 8
    assert (mixed.loc[mixed["sum_neg_logprob"].notna(), "sum_neg_logprob"] == 2.0).all()
    assert table.loc[table.k == 1, "pass_at_k"].iloc[0] == 1.0
    assert math.isnan(pr.predictor_table(mixed)["mean_token_entropy"].iloc[0])  # partial: not an average
    # a new folder has it everywhere: 4 tokens at -log p = 0.5
    fresh = tmp_path / "fresh"
    ev.evaluate("fake", str(path), 4, sampler=ScriptSampler(answers, True), **{**kw, "out_dir": fresh})
    assert pr.predictor_table(ev.read_samples(fresh))["mean_token_entropy"].iloc[0] == pytest.approx(0.5)
    # and a sampler without log-probs stores NaN, not an error
    none = tmp_path / "none"
    ev.evaluate("fake", str(path), 4, sampler=ScriptSampler(answers, False), **{**kw, "out_dir": none})
    assert ev.read_samples(none)["sum_neg_logprob"].isna().all()


# --- the analysis notebook's section ---------------------------------------------------------------
def test_the_study_section_draws_the_figure_and_tables_only_with_a_predictors_table(tmp_path):
    """On the stored study fixture (4 pairs x 2 seeds): a predictor ranked like ground truth's gain gets
    rho 1 for it; the figure (PNG + PDF) and both CSVs are written; without a table, one line and nothing."""
    import pandas as pd

    from mirage.study import predictors as sp

    fixture = Path(__file__).parent / "fixtures" / "study"
    study_dir = tmp_path / "study"
    shutil.copytree(fixture, study_dir)
    figures = tmp_path / "figures"
    nothing = sp.draw(study_dir, figures)
    assert len(nothing) == 1 and "no alignment/predictors.parquet" in nothing[0] and not figures.exists()
    order = {("dial-10", "toy-math"): 1, ("dial-90", "toy-logic"): 2, ("dial-90", "toy-math"): 3,
             ("dial-10", "toy-logic"): 4}  # ground truth's mean gain rises in this order in the fixture
    predictors = pd.DataFrame([{"model": m, "task": t, "dataset": f"{t}_test", "pass_at_1": v,
                                "majority_share": -v, "format_rate": 1.0} for (m, t), v in order.items()])
    predictors.to_parquet(study_dir / "alignment" / "predictors.parquet")
    table, rho, outcomes, fig, outcome_fig = sp.draw(study_dir, figures)
    assert len(table) == 4 and fig is not None and outcome_fig is not None
    assert rho.loc["pass_at_1", "ground_truth"] == 1.0 and rho.loc["majority_share", "ground_truth"] == -1.0
    # the re-asked outcomes: per task (2 pairs each) and within-task; ground truth ranked by its own gain
    gt = outcomes[(outcomes.condition == "ground_truth") & (outcomes.predictor == "pass_at_1")].set_index("stratum")
    assert set(gt.index) == {"toy-math", "toy-logic", "within-task"} and gt.loc["within-task", "rho"] == 1.0
    for name in ("predictor_correlations.png", "predictor_correlations.pdf", "predictors.csv",
                 "predictor_correlations.csv", "predictor_outcomes.csv", "predictor_outcomes.png"):
        assert (figures / name).stat().st_size > 200, name
    written = pd.read_csv(figures / "predictor_correlations.csv")
    assert set(written["condition"]) >= {"ground_truth", "random"} and (written["n_pairs"] == 4).all()
    assert (written["n_seeds"] == 2).all()


def test_the_outcome_script_refuses_a_preset_without_its_tables_in_one_line_before_any_work(tmp_path):
    import os
    import subprocess
    import sys

    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(root / "lib"), os.environ.get("PYTHONPATH", "")])}
    r = subprocess.run([sys.executable, str(root / "scripts" / "predictor_outcomes.py"), "testbed-predictors",
                        "no-such-preset", "--out", str(tmp_path)], capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 2 and "PRESET 'no-such-preset': no figures/no-such-preset/results.csv" in r.stderr
    assert len(r.stderr.strip().splitlines()[-1]) < 200 and not list(tmp_path.iterdir())  # nothing written
