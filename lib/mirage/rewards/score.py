"""``compute_score``: the reward of one response, with verl's custom-reward signature.

Use unchanged as verl 0.9.1's ``reward.custom_reward_function`` (path
``pkg://mirage.rewards``, name ``compute_score``, options in ``reward_kwargs``).
Every result has the same keys, whatever the data source, because verl stacks
them across a batch: ``score`` (the reward of the variant), ``acc`` (answer
correct, format ignored: the validation metric), ``format``, ``pred`` (the
extracted answer or None), ``korbench_mode`` (None outside KOR-Bench) and
``error`` (None unless a check timed out or crashed and so scored 0).
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Iterable, Mapping

from mirage.rewards import korbench, mathcheck, synlogic
from mirage.rewards.response import extract_answer, format_ok

VARIANTS = ("ground_truth", "random", "incorrect", "format")
MATH_CHECKERS = ("math_verify", "exact")
RESULT_KEYS = ("score", "acc", "format", "pred", "korbench_mode", "error")

# --- which checker scores which data_source: the one table ------------------------------
MATH_SOURCES = {"deepscaler": "deepscaler", "math500": "math500", "aime24": "aime24", "amc23": "amc23",
                "aime2024": "aime24", "amc2023": "amc23"}
TESTBED_SOURCES = ("toy-math", "toy-logic")


def source_family(data_source: str) -> str:
    """'math', 'korbench', 'synlogic' or 'testbed'; a KeyError naming the known sources otherwise."""
    if data_source.startswith("korbench/") and data_source.split("/", 1)[1] in korbench.CATEGORIES:
        return "korbench"
    if data_source.removeprefix("val/") in TESTBED_SOURCES:
        return "testbed"
    if synlogic.task_name(data_source) is not None:
        return "synlogic"
    # verl-style names such as "simplerl/math500" or "HuggingFaceH4/MATH-500" name the same sets.
    if data_source.rsplit("/", 1)[-1].lower().replace("-", "").replace("_", "") in MATH_SOURCES:
        return "math"
    raise KeyError(
        f"unknown data_source {data_source!r}; known: math {sorted(set(MATH_SOURCES.values()))} "
        f"(also as '<org>/<name>'), {[f'korbench/{c}' for c in korbench.CATEGORIES]}, "
        f"SynLogic tasks (optionally 'val/<task>'): {sorted(synlogic.TASKS)}, testbed {list(TESTBED_SOURCES)}")


def random_coin(p: float, seed: int, data_source: str, solution_str: str, ground_truth: Any,
                extra_info: Mapping | None, step: Any = None, sample_index: Any = None) -> bool:
    """A reproducible coin with P(True) = p, independent per response.

    A hash of the seed, the prompt's identity (data_source, ground truth and
    extra_info index / uid / split), the response text and, when given, the step
    and the sample's index in its group (so identical texts get separate coins).
    """
    ident = {k: str(extra_info[k]) for k in ("index", "uid", "split") if extra_info and k in extra_info}
    key = json.dumps([seed, data_source, str(ground_truth), ident, str(step), str(sample_index)])
    digest = hashlib.blake2b(key.encode() + b"\0" + solution_str.encode("utf-8", "surrogatepass"),
                             digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2.0 ** 64 < p


def _check(family: str, data_source: str, text: str, answer: str | None, ground_truth: Any,
           extra_info: Mapping | None, checker: str, korbench_mode: str, release_faithful: bool,
           synlogic_path, math_timeout: float, synlogic_timeout: float):
    """(acc, pred, error) of one response for its data source's checker."""
    if family == "math":
        if ground_truth is None:
            raise ValueError(f"math row ({data_source}) has no ground_truth")
        acc, error = mathcheck.is_correct(answer, str(ground_truth), checker, math_timeout)
        return acc, answer, error
    if family == "korbench":
        # Score the <answer> block when it holds a [[...]], else the whole response (as KOR-Bench does).
        scored = answer if answer is not None and korbench.inner_text(answer) != korbench.NULL else text
        info = extra_info or {}
        missing = [k for k in ("rule_id", "idx") if k not in info]
        if missing:
            raise KeyError(f"KOR-Bench row ({data_source}) lacks extra_info {missing} (KOR-Bench's rule_id / idx)")
        acc, error = korbench.is_correct(data_source.split("/", 1)[1], scored, str(ground_truth),
                                         info["rule_id"], info["idx"], korbench_mode)
        pred = korbench.extract(scored)
        return acc, (None if pred == korbench.NULL else pred), error
    if family == "synlogic":
        acc, error = synlogic.is_correct(data_source, answer, extra_info, release_faithful=release_faithful,
                                         synlogic_path=synlogic_path, timeout=synlogic_timeout)
        return acc, answer, error
    from mirage.testbed.tasks import check_answer  # lazy: the testbed is optional here

    return (answer is not None and bool(check_answer(data_source, answer, ground_truth, extra_info))), answer, None


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, *,
                  variant: str = "ground_truth", p: float = 0.5, math_checker: str | None = None,
                  release_faithful: bool = False, seed: int = 0, step: Any = None, sample_index: Any = None,
                  korbench_mode: str = "published", synlogic_path: str | None = None,
                  math_timeout: float = mathcheck.TIMEOUT_S, synlogic_timeout: float = synlogic.TIMEOUT_S,
                  **ignored: Any) -> dict:
    """Reward of one response. See the module docstring and docs/rewards.md.

    math_checker: "math_verify" (default) or "exact"; with release_faithful=True
    and no explicit checker, the release's unnormalised string equality.
    ``ignored`` absorbs extra kwargs verl passes (e.g. ``return_dict``).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown reward variant {variant!r}; known: {VARIANTS}")
    if math_checker is not None and math_checker not in MATH_CHECKERS:
        raise ValueError(f"unknown math_checker {math_checker!r}; known: {MATH_CHECKERS}")
    if korbench_mode not in korbench.MODES:
        raise ValueError(f"unknown korbench_mode {korbench_mode!r}; known: {korbench.MODES}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if isinstance(solution_str, bytes):
        solution_str = solution_str.decode("utf-8", errors="replace")
    if not isinstance(solution_str, str):
        raise TypeError(f"solution_str must be str, got {type(solution_str).__name__}")
    checker = math_checker or ("release" if release_faithful else "math_verify")
    family = source_family(data_source)

    fmt = format_ok(solution_str, release_faithful)
    answer = extract_answer(solution_str, release_faithful)
    acc, pred, error = _check(family, data_source, solution_str, answer, ground_truth, extra_info, checker,
                              korbench_mode, release_faithful, synlogic_path, math_timeout, synlogic_timeout)
    if variant == "ground_truth":
        score = fmt and acc
    elif variant == "incorrect":
        # Release defect: the math "incorrect" reward that wins rewards CORRECT answers.
        score = fmt and (acc if release_faithful and family == "math" else not acc)
    elif variant == "format":
        score = fmt
    else:
        score = fmt and random_coin(p, seed, data_source, solution_str, ground_truth, extra_info, step, sample_index)
    return {"score": float(score), "acc": float(acc), "format": float(fmt), "pred": pred,
            "korbench_mode": korbench_mode if family == "korbench" else None, "error": error}


# --- many at once --------------------------------------------------------------------------
def _unpack(i: int, item) -> tuple[tuple, dict]:
    if isinstance(item, Mapping):
        missing = [k for k in ("data_source", "solution_str", "ground_truth") if k not in item]
        if missing:
            raise KeyError(f"item {i} lacks {missing}")
        kw = {k: v for k, v in item.items() if k not in ("data_source", "solution_str", "ground_truth", "extra_info")}
        return (item["data_source"], item["solution_str"], item["ground_truth"], item.get("extra_info")), kw
    if isinstance(item, (tuple, list)) and len(item) in (3, 4):
        return tuple(item) + (None,) * (4 - len(item)), {}
    raise TypeError(f"item {i}: expected (data_source, solution_str, ground_truth[, extra_info]) or a mapping, "
                    f"got {type(item).__name__}")


def _score_one(job: tuple[tuple, dict]) -> dict:
    args, kwargs = job
    return compute_score(*args, **kwargs)


def compute_scores(items: Iterable, processes: int | None = None, progress: bool = False, **kwargs) -> list[dict]:
    """``compute_score`` over many items, in order; in a process pool when processes > 1.

    An item is ``(data_source, solution_str, ground_truth[, extra_info])`` or a
    mapping with those keys (other keys are per-item kwargs, e.g. sample_index).
    """
    from tqdm.auto import tqdm

    jobs = [(args, {**kwargs, **kw}) for args, kw in (_unpack(i, it) for i, it in enumerate(items))]
    bar = dict(total=len(jobs), disable=not progress, desc="scoring", unit="resp")
    if not processes or processes <= 1:
        return [_score_one(job) for job in tqdm(jobs, **bar)]
    # spawn, not fork: the caller may be threaded (verl, Ray) and hold worker pipes.
    with ProcessPoolExecutor(processes, mp_context=get_context("spawn")) as pool:
        chunksize = max(1, len(jobs) // (processes * 8))
        return list(tqdm(pool.map(_score_one, jobs, chunksize=chunksize), **bar))
