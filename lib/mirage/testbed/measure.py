"""Measure a testbed model's alignment with each task: base pass@k and real capability.

* pass@k: n samples per test problem at T=1.0 (unbiased estimator), plus how often
  a sample gives the BUGGY procedure's answer, how often the format is right and how often
  the answer is right whatever the format (``acc_any_format``: the task's lenient reading).
* capability: the procedure is forced by giving the model the start of that
  procedure's response up to the first character where the two procedures
  differ (plus that character); greedy decoding then has to carry it out. A
  model that "knows" the procedure computes its answer; the dial only sets how
  often it chooses it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from mirage.rewards import compute_score, extract_answer, format_ok
from mirage.sample.base import apply_chat_template, prompt_seed
from mirage.tasks import toy as T
from mirage.tasks import toy_code as TC


def eval_problems(task: str, n: int = T.DEFAULT_SIZES["test"]) -> list[T.Problem]:
    """The problems of ``<task>_test`` (same generator and seed as ``ensure_dataset``)."""
    if task == TC.TASK:
        return TC.generate("test", n, seed=T.DEFAULT_SEEDS["test"])
    return T.generate(task, "test", n, seed=T.DEFAULT_SEEDS["test"])


class _Judge:
    """Is an answer right, is it the buggy procedure's, and (format-free) is the response right: toy-math /
    toy-logic compare answers exactly; toy-code runs the program in the sandbox through ``compute_score``
    (verdicts cached, so a repeated program runs once) and has no lenient reading (any-format = in format)."""

    def __init__(self, task: str):
        self.task = task

    def __call__(self, problem: T.Problem, text: str, correct: bool = True) -> bool:
        if self.task != TC.TASK:
            want = problem.answer if correct else problem.buggy_answer
            return T.check_answer(self.task, extract_answer(text), want)
        row = TC.to_row(problem, 0, "test")
        result = compute_score(TC.TASK, text, row["reward_model"]["ground_truth"], row["extra_info"])
        return bool(result["acc"]) if correct else result["procedure"] == "buggy"

    def any_format(self, problem: T.Problem, text: str) -> bool:
        if self.task == TC.TASK:
            return self(problem, text)
        return T.check_answer(self.task, T.lenient_answer(text, self.task), problem.answer)


def generate(model, tokenizer, prompts: list[list[int]], seeds: list[int], n: int, temperature: float,
             max_new_tokens: int, batch_size: int = 16) -> list[list[str]]:
    """``n`` continuations per tokenised prompt (greedy at temperature 0), stop token dropped.

    Uses the project's KV-cache sampler: each prompt's samples depend only on its seed.
    """
    from mirage.sample.hf import sample_tokens  # why: torch, which importing mirage.testbed.measure does not need

    batch = sample_tokens(model, prompts, seeds, n=n, temperature=temperature, max_tokens=max_new_tokens,
                          stop_token_ids=[tokenizer.eos_token_id], pad_token_id=tokenizer.pad_token_id,
                          batch_size=batch_size)
    texts = [tokenizer.decode(batch.responses[row, :int(batch.lengths[row])].tolist(), skip_special_tokens=True)
             for row in range(batch.responses.shape[0])]
    return [texts[i * n:(i + 1) * n] for i in range(len(prompts))]


def forced_prefix(problem: T.Problem, correct: bool) -> str:
    """The response prefix that commits to one procedure (common prefix + first differing char)."""
    mine, other = problem.response(correct), problem.response(not correct)
    i = next(j for j, (a, b) in enumerate(zip(mine, other)) if a != b)
    return mine[:i + 1]


def measure_task(model, tokenizer, task: str, n: int = 16, n_problems: int = 200, temperature: float = 1.0,
                 max_new_tokens: int | None = None, seed: int = 0, progress: bool = True) -> dict[str, Any]:
    from tqdm.auto import tqdm

    from mirage.passk import default_ks, pass_at_k  # why: pandas, which importing mirage.testbed.measure does not need

    problems = eval_problems(task, n_problems)
    judge = _Judge(task)
    if max_new_tokens is None:
        max_new_tokens = TC.MAX_RESPONSE_TOKENS if task == TC.TASK else 48
    encode = lambda text: tokenizer(text, add_special_tokens=False)["input_ids"]  # noqa: E731
    prompts = [encode(apply_chat_template(tokenizer, p.prompt())) for p in problems]
    seeds = [prompt_seed(seed, p.key) for p in problems]
    correct, buggy, formatted, started_correct, correct_when_started, any_format = [], 0, 0, 0, 0, 0
    chunk = 16
    for b in tqdm(range(0, len(problems), chunk), desc=f"pass@{n} {task}", disable=not progress, mininterval=2):
        outs = generate(model, tokenizer, prompts[b:b + chunk], seeds[b:b + chunk], n, temperature,
                        max_new_tokens)
        for p, texts in zip(problems[b:b + chunk], outs):
            hits = [judge(p, t) for t in texts]
            correct.append(sum(hits))
            buggy += sum(judge(p, t, correct=False) for t in texts)
            formatted += sum(format_ok(t) for t in texts)
            any_format += sum(judge.any_format(p, t) for t in texts)
            prefix = forced_prefix(p, True)
            for text, hit in zip(texts, hits):
                if text.startswith(prefix):
                    started_correct += 1
                    correct_when_started += hit
    total = n * len(problems)
    result: dict[str, Any] = {f"pass@{k}": round(float(np.mean(pass_at_k(n, np.array(correct), k))), 4)
                              for k in default_ks(n)}
    result.update({
        "n": n, "problems": len(problems), "temperature": temperature,
        "buggy_answer_rate": round(buggy / total, 4),
        "format_rate": round(formatted / total, 4),
        "acc_any_format": round(any_format / total, 4),
        "correct_start_rate": round(started_correct / total, 4),
        "acc_given_correct_start": round(correct_when_started / max(1, started_correct), 4),
    })
    # capability: greedy decoding with the procedure forced by the start of its response
    for procedure, is_correct in (("correct", True), ("buggy", False)):
        prefixes = [forced_prefix(p, is_correct) for p in problems]
        outs = generate(model, tokenizer, [pr + encode(fx) for pr, fx in zip(prompts, prefixes)],
                        [0] * len(problems), 1, 0.0, max_new_tokens, batch_size=64)
        hits = sum(judge(p, fx + text, is_correct) for p, fx, (text,) in zip(problems, prefixes, outs))
        result[f"forced_greedy_acc_{procedure}"] = round(hits / len(problems), 4)
    return result


def measure_alignment(model, tokenizer, n: int = 16, n_problems: int = 200, seed: int = 0,
                      progress: bool = True, tasks=T.TASK_NAMES) -> dict[str, dict[str, Any]]:
    """``{task: measurements}`` for ``tasks`` (default both classic testbed tasks; see ``measure_task``)."""
    return {task: measure_task(model, tokenizer, task, n=n, n_problems=n_problems, seed=seed,
                               progress=progress) for task in tasks}
