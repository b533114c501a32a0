"""``compute_score``: the reward of one response, with verl's custom-reward signature.

Use unchanged as verl 0.9.1's ``reward.custom_reward_function`` (path
``pkg://mirage.rewards``, name ``compute_score``, options in ``reward_kwargs``).
Every result has the same keys, whatever the data source, because verl stacks
them across a batch: ``score`` (the reward of the variant), ``acc`` (answer
correct, format ignored: the validation metric), ``format``, ``pred`` (the
extracted answer or None), the columns the registered checkers declare
(``Checker.result_columns``, e.g. KOR-Bench's ``korbench_mode``; None on other
checkers' rows), ``error`` (None unless a check timed out or crashed and so scored 0)
and ``procedure`` (which procedure the answer follows where the task knows several: the
testbed's "correct" / "buggy" / "neither"; None elsewhere). ``result_keys()`` lists them.

The reward itself is the variant's ``Reward.score(record)``, given one ``ResponseRecord``.
"""

from __future__ import annotations

import hashlib
import json
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from typing import Any, Iterable, Mapping

from mirage.rewards.base import REWARDS, ResponseRecord
from mirage.rewards.checkers import Verdict, result_values
from mirage.rewards.response import extract_answer, format_ok
from mirage.rewards.routing import parse_options, result_keys, route

# keywords verl's reward managers may add to every call; they concern reward models, not mirage
VERL_PASSTHROUGH = ("reward_router_address", "reward_model_tokenizer", "return_dict")


def source_family(data_source: str) -> str:
    """The name of the checker that scores ``data_source`` (a KeyError naming the known sources otherwise)."""
    return route(data_source).name


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


def compute_score(data_source: str, solution_str: str, ground_truth: Any, extra_info: Mapping | None = None, *,
                  variant: str = "ground_truth", p: float = 0.5, release_faithful: bool = False, seed: int = 0,
                  step: Any = None, sample_index: Any = None, **options: Any) -> dict:
    """Reward of one response. See the module docstring and docs/rewards.md.

    ``variant``: a response-scope reward of ``mirage.rewards.REWARDS``. ``options`` are the
    registered checkers' typed options (``mirage.rewards.routing.option_names()``: math_checker,
    synlogic_path, ..., and those of checkers registered by plugins); an unknown keyword is a
    ValueError naming it.
    """
    reward = REWARDS.get(variant)
    if reward is None or reward.scope != "response":
        known = [name for name in REWARDS if REWARDS[name].scope == "response"]
        raise ValueError(f"unknown reward variant {variant!r}; known: {tuple(known)}")
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    for key in VERL_PASSTHROUGH:
        options.pop(key, None)
    checker = route(data_source)
    try:
        opts = parse_options(options)[checker.name]
    except ValueError as e:
        raise ValueError(f"{e} (scoring data_source {data_source!r}, checker {checker.name!r})") from None
    if isinstance(solution_str, bytes):
        solution_str = solution_str.decode("utf-8", errors="replace")
    if not isinstance(solution_str, str):
        raise TypeError(f"solution_str must be str, got {type(solution_str).__name__}")

    fmt = format_ok(solution_str, release_faithful)
    answer = extract_answer(solution_str, release_faithful)
    verdict = Verdict(*checker.check(data_source, solution_str, answer, ground_truth, extra_info, opts,
                                     release_faithful))

    def coin() -> bool:
        return random_coin(p, seed, data_source, solution_str, ground_truth, extra_info, step, sample_index)

    record = ResponseRecord(text=solution_str, answer=answer, format_ok=fmt, correct=bool(verdict.acc),
                            verdict=verdict, checker=checker, data_source=data_source, ground_truth=ground_truth,
                            extra_info=extra_info, release_faithful=release_faithful, coin=coin)
    score = reward.score(record)
    # every checker's columns, so that results stack across a batch whatever the source
    return {"score": float(score), "acc": float(verdict.acc), "format": float(fmt), "pred": verdict.pred,
            **result_values(checker, opts, verdict), "error": verdict.error, "procedure": verdict.procedure}


def __getattr__(name: str):
    if name == "RESULT_KEYS":  # the keys as registered now (a plugin's checker may add columns)
        return result_keys()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


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
