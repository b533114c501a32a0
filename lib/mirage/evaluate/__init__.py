"""Evaluation: N samples per problem, scored, and the pass@k curve with bootstrap CIs.

One evaluation (one model or checkpoint, one task or dataset) lives in one folder:

    <out_dir>/
      eval_manifest.json                     settings, model, prompt template, sampler, versions,
                                             hardware, timing, status (``mirage.runs.Status``)
      samples/<dataset>/part-<pos>.parquet   ONE ROW PER SAMPLE; one file per chunk of problems,
                                             named by the chunk's first problem position
                                             (sum_neg_logprob: -sum of the sampled tokens' log-probs,
                                             NaN without them; a part written before that column
                                             existed reads back with it NaN, and resumes)
                                             (acc_any_format: the answer scored whatever the format,
                                             ``mirage.rewards.lenient``; NaN in older parts, as above)
      passk.parquet, passk.csv               dataset, k, pass_at_k, ci_low, ci_high, n_problems
      format.parquet, format.csv             per dataset: pass_at_1, format_rate, answer_acc,
                                             format_free_accuracy (``format_table``)

Each chunk's file is written atomically once its samples are scored, so a kill loses
at most the chunk in flight; a rerun skips the problems already on disk. Every
problem's samples are seeded by ``prompt_seed(seed, "<dataset>/<problem_id>")``, so a
resumed or re-chunked run gives the same rows as an uninterrupted one. Scoring runs
in a process pool while the next chunk is sampled.

A second process writing into the same folder is refused at once (``runs.FolderLock``);
a folder holding an evaluation with other settings is refused, naming the keys that
differ, unless ``restart`` starts it over.

    core.py       evaluate(): one model x one task or dataset -> samples + pass@k
    datasets.py   which datasets a task or name means, one row per problem, the default n / length
    scoring.py    scoring in a process pool while the next chunk is sampled; samplers by backend name
    sweep.py      evaluate_run(): the base model and every checkpoint of a run; load_eval()
    alignment.py  align(): the base models' pass@k table, and their predictors beside it
    predictors.py the alignment predictors of stored samples; their rank correlation with gains
    cli.py        ``mirage eval`` and ``mirage align``
"""


from mirage.evaluate.alignment import align
from mirage.evaluate.core import EvalSettings, evaluate, format_table, passk_table, read_samples
from mirage.evaluate.datasets import default_max_tokens, default_n, eval_datasets, load_problems, task_kind
from mirage.evaluate.scoring import make_sampler
from mirage.evaluate.sweep import evaluate_run, load_eval

__all__ = ["align", "EvalSettings", "evaluate", "format_table", "passk_table", "read_samples", "default_max_tokens", "default_n",
           "eval_datasets", "load_problems", "task_kind", "make_sampler", "evaluate_run", "load_eval"]
