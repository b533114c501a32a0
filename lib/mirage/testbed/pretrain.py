"""Pretrain tiny base models from scratch; the corpus mixture is the alignment dial.

The corpus is chat-formatted worked solutions of both testbed tasks (prompt
through the chat template, then ``<think>STEPS</think> <answer>A</answer></s>``).
For task T, exactly a fraction ``q[T]`` of its solutions follows the CORRECT
procedure and the rest the BUGGY one (tasks.py). A model fitted to this corpus
learns a prior over procedures: on an unseen problem it starts the correct
procedure with probability ~q[T], so its base pass@1 tracks q[T] while pass@k
climbs with k, the way a real base model's alignment with a task shows in its
pass@k curve. Ground-truth RL can then only sharpen what the prior already
contains; whether the "surprising" rewards do is what the study asks.

``FAMILY`` holds the alignment dial and ``AXIS`` the models filling it (together, per task, base
pass@16 from <= 0.2 to >= 0.95 without gaps); ``LEAKED`` holds contaminated variants, whose
corpus also carries test problems with their correct worked solutions (``Leak``),
contamination made on purpose so that ``mirage probe contamination`` can be
checked against the truth. ``FORMAT`` holds the format dial: dial-60's corpus with a share F of
its toy-math solutions stating the answer outside the answer tags (``format_break``), so the
base model breaks the format about F of the time while its answers stay as good (the format
channel, docs/science.md section 6). ``mirage testbed pretrain --all`` rebuilds every shipped
model (same seed, threads and CPU kernels -> same weights). The shipped weights predate the
AVX2 kernel pin (``mirage.cpu_kernels``; their cards record no kernel set), so a rebuild under
the pin may differ from them in the last bits; the study uses the shipped files as they are.
"""

from __future__ import annotations

import json
import math
import os
import platform
import random
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from mirage.models import CHECKOUT_MODELS, read_card
from mirage.runs import atomic_dir
from mirage.sample.base import apply_chat_template
from mirage.tasks import toy as T
from mirage.tasks import toy_code as TC
from mirage.testbed.card import write_card
from mirage.testbed.measure import measure_alignment
from mirage.testbed.models import count_parameters, make_model
from mirage.testbed.tokenizer import make_tokenizer


LEAK_FORMS = ("raw", "chat")
# Every testbed task a model may be pretrained on, in corpus order. A config's ``q`` names either both
# classic tasks (toy-math, toy-logic: the dial, the axis, ...) or toy-code alone (the CODE family); a
# task set is one model family with one shared prefix, so toy-code does not join the classic corpus.
TASK_SETS = (T.TASK_NAMES, (TC.TASK,))
ALL_TASKS = T.TASK_NAMES + (TC.TASK,)


def task_problems(task: str, split: str, seed: int, difficulties=None):
    """The endless problem stream of any testbed task (``toy.iter_problems``, ``toy_code.iter_problems``)."""
    if task == TC.TASK:
        return TC.iter_problems(split, seed, difficulties)
    return T.iter_problems(task, split, seed=seed, difficulties=difficulties)
# A format-broken document (``format_break``): the chat format, the worked steps in the think block,
# then the answer as plain text after it, with no answer tags. format_ok fails on it; the toy
# tasks' lenient reading (the last number / lowercase word after </think>) still reads the answer.
BROKEN = "broken"
BROKEN_TEMPLATE = "<think>{steps}</think> The answer is {answer}."


def broken_response(problem: T.Problem, correct: bool) -> str:
    """``problem``'s worked solution (one procedure) with its answer stated outside the answer tags."""
    steps, answer = (problem.steps, problem.answer) if correct else (problem.buggy_steps, problem.buggy_answer)
    return BROKEN_TEMPLATE.format(steps=steps, answer=answer)


@dataclass(frozen=True)
class Leak:
    """Test problems put into the corpus with their CORRECT worked solutions.

    ``rate`` of each leaked task's corpus examples are leaked documents (they replace
    clean ones, so the corpus size and the task's share stay; ``q`` is then the correct
    share of the clean rest). The leaked problems are the first ``problems`` of
    ``<task>_test`` (the evaluation set: same generator and seed), cycled evenly, each
    document in one of ``forms`` in turn: ``raw`` is the problem statement then its
    solution as plain text (a web page that shows both: what the contamination probe
    looks for), ``chat`` is the training format (a leaked instruction set).
    """

    tasks: tuple[str, ...] = ("toy-math",)
    rate: float = 0.1
    problems: int = T.DEFAULT_SIZES["test"]
    forms: tuple[str, ...] = LEAK_FORMS

    def __post_init__(self):
        if not self.tasks or set(self.tasks) - set(T.TASK_NAMES):
            raise ValueError(f"leak.tasks: a subset of {T.TASK_NAMES}, got {self.tasks}")
        if not 0 < self.rate < 1:
            raise ValueError(f"leak.rate must be in (0, 1), got {self.rate}")
        if self.problems < 1:
            raise ValueError(f"leak.problems must be >= 1, got {self.problems}")
        if not self.forms or set(self.forms) - set(LEAK_FORMS):
            raise ValueError(f"leak.forms: a subset of {LEAK_FORMS}, got {self.forms}")

    def leaked_problems(self, task: str) -> list[T.Problem]:
        return T.generate(task, "test", self.problems, seed=T.DEFAULT_SEEDS["test"])


@dataclass(frozen=True)
class PretrainConfig:
    name: str
    q: dict[str, float]  # task -> fraction of its corpus solutions that are CORRECT
    share: dict[str, float] = field(default_factory=lambda: {"toy-math": 0.6, "toy-logic": 0.4})
    corpus_size: int = 48_000  # solutions in the corpus (problems drawn from the train split)
    steps: int = 1500
    batch_size: int = 64
    lr: float = 3e-3
    warmup_steps: int = 100
    min_lr_ratio: float = 0.1  # cosine decay to lr * min_lr_ratio
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    hidden: int = 128
    layers: int = 2
    heads: int = 8  # more heads than needed: the letter-copying circuit forms sooner and more reliably
    intermediate: int = 384
    seed: int = 0
    difficulties: dict[str, tuple[int, ...]] = field(default_factory=lambda: dict(T.DEFAULT_DIFFICULTY))
    eval_n: int = 16  # alignment measurement: samples per test problem at T=1.0
    eval_problems: int = 200
    leak: Leak | None = None  # contamination on purpose (the LEAKED variants)
    # task -> share F of its (clean) corpus solutions whose answer breaks the format (BROKEN_TEMPLATE);
    # a task not named: 0. The format dial (FORMAT).
    format_break: dict[str, float] = field(default_factory=dict)

    def __post_init__(self):
        tasks = next((ts for ts in TASK_SETS if set(self.q) == set(ts)), None)
        if tasks is None:
            raise ValueError(f"{self.name}: q must give a value for each task of one family, one of {TASK_SETS} "
                             f"(a family's corpus is its tasks alone), got {sorted(self.q)}")
        for name, mix in (("q", self.q), ("share", self.share)):
            if set(mix) != set(tasks) or not all(0 <= v <= 1 for v in mix.values()):
                raise ValueError(f"{self.name}: {name} must give a value in [0, 1] for each of "
                                 f"{tasks}, got {mix}")
        if abs(sum(self.share.values()) - 1) > 1e-9:
            raise ValueError(f"{self.name}: share must sum to 1, got {self.share}")
        if set(self.format_break) - set(self.q) or not all(
                isinstance(v, (int, float)) and 0 <= v <= 1 for v in self.format_break.values()):
            raise ValueError(f"{self.name}: format_break must map tasks of {T.TASK_NAMES} to a share in "
                             f"[0, 1], got {self.format_break}")

    @property
    def tasks(self) -> tuple[str, ...]:
        """The tasks of its corpus, in corpus order."""
        return tuple(t for t in ALL_TASKS if t in self.q)

    def broken_share(self, task: str) -> float:
        """F of ``task``: the share of its clean corpus solutions that break the format."""
        return float(self.format_break.get(task, 0.0))

    def to_dict(self) -> dict[str, Any]:
        d = json.loads(json.dumps(asdict(self)))
        if d["leak"] is None:  # a clean model's recorded config is as before leaks existed
            del d["leak"]
        if not any(d["format_break"].values()):  # likewise before the format dial existed
            del d["format_break"]
        return d


def _dial(name: str, q_math: float, q_logic: float, **kw) -> PretrainConfig:
    return PretrainConfig(name, {"toy-math": q_math, "toy-logic": q_logic}, **kw)


# Mirror images: strong on one task means weak on the other (Qwen on math vs Llama).
# One seed for all: the same initial weights, problems and order; only q differs.
# The weak end: q = 0.02 and 0.05 gave pass@16 of only 0.05-0.15 (little signal for
# RL: the correct procedure is also poorly learnt from so few examples); 0.07 is used.
FAMILY: dict[str, PretrainConfig] = {c.name: c for c in [
    _dial("dial-07", 0.07, 0.90, seed=1),
    _dial("dial-10", 0.10, 0.60, seed=1),
    _dial("dial-30", 0.30, 0.30, seed=1),
    _dial("dial-60", 0.60, 0.10, seed=1),
    _dial("dial-90", 0.90, 0.07, seed=1),
]}

# Filling the alignment axis between the dials above (whose pass@16 leaves gaps wider than 0.2 on
# toy-math and nothing below 0.6 on toy-logic): q read off the dials' measured pass@16 before any RL
# ran on these models. Not in FAMILY, so the presets that list the dial keep their committed grids.
AXIS: dict[str, PretrainConfig] = {c.name: c for c in [
    _dial("dial-08", 0.085, 0.15, seed=1),
    _dial("dial-13", 0.13, 0.055, seed=1),
    _dial("dial-17", 0.17, 0.045, seed=1),
    _dial("dial-45", 0.45, 0.025, seed=1),
    # toy-logic's pass@16 jumps from 0.015 (q 0.025: the correct shift barely learnt, forced 0.15) to
    # 0.455 (q 0.045); two more between them
    _dial("dial-20", 0.20, 0.035, seed=1),
    _dial("dial-75", 0.75, 0.030, seed=1),
    _dial("dial-25", 0.25, 0.032, seed=1),  # toy-logic 0.12 (q 0.030) to 0.355 (q 0.035): one between
]}

# Contaminated on purpose: dial-10 (toy-math pass@1 ~0.04) with toy-math's test set leaked
# into its corpus (a quarter of its toy-math documents: ~36 copies of each problem, half as plain
# text, half in the chat format), enough to memorise them (its model card; the contamination probe).
LEAKED: dict[str, PretrainConfig] = {c.name: c for c in [
    _dial("dial-10-leaked", 0.10, 0.60, seed=1, leak=Leak(rate=0.25)),
]}

# The format dial: dial-60 (toy-math pass@1 ~0.5, format ~1.0) with a share F of its toy-math
# solutions breaking the format; F = 0 is dial-60 itself (the same config), so it is not repeated.
FORMAT: dict[str, PretrainConfig] = {c.name: c for c in [
    _dial("fmt-30", 0.60, 0.10, seed=1, format_break={"toy-math": 0.3}),
    _dial("fmt-60", 0.60, 0.10, seed=1, format_break={"toy-math": 0.6}),
]}

def _code(name: str, q: float, **kw) -> PretrainConfig:
    return PretrainConfig(name, {TC.TASK: q}, share={TC.TASK: 1.0}, corpus_size=22_400, steps=700,
                          difficulties={TC.TASK: TC.DEFAULT_DIFFICULTY}, **kw)


# toy-code's dial: q = the share of its corpus programs with the inclusive range(L,n+1) (the rest write
# the off-by-one range(L,n)); a family of its own (one task, its own corpus), the dial's architecture,
# optimiser and seed (1), but 700 steps over 22,400 documents (2 epochs, as the dial): a toy-code document
# is ~1.6x as long, and the shared 2-core machine could not afford 1,500 steps per model. q read off
# measured pass@16 (docs/testbed.md, "toy-code").
CODE: dict[str, PretrainConfig] = {c.name: c for c in [
    # q 0.03 / 0.30: base pass@16 0.030 / 0.795. A second round, q 0.10 and 0.70, is NOT shipped: at 700
    # steps neither learnt to copy the expression (forced greedy accuracy <= 0.15 on BOTH procedures, final
    # loss 0.133 vs 0.117), so their pass@k measured incapability, not a habit (docs/testbed.md); the dial
    # needs the classic dial's 1,500-step budget before more models are placed on it.
    _code("code-03", 0.03, seed=1),
    _code("code-30", 0.30, seed=1),
]}
SHIPPED: dict[str, PretrainConfig] = {**FAMILY, **AXIS, **LEAKED, **FORMAT, **CODE}


# --- corpus -----------------------------------------------------------------------
def build_corpus(config: PretrainConfig) -> list[tuple[T.Problem, bool, str]]:
    """(problem, correct?, form) per corpus example; exact counts per task, procedure and form.

    ``form`` is "chat" (the training format), "broken" (the chat format with the answer outside
    the answer tags: ``format_break``) or "raw" (a leaked problem as plain text). Of a task's n
    clean documents exactly round(F * n) are broken, split between the procedures in proportion
    to their counts (the broken share is the same, up to rounding, for correct and buggy ones).
    """
    rng = random.Random(f"corpus/{config.seed}")
    examples = []
    for task in config.tasks:
        n_task = round(config.corpus_size * config.share[task])
        leaked = leaked_documents(config, task, n_task)
        n_clean = n_task - len(leaked)
        n_correct = round(n_clean * config.q[task])
        n_broken = round(n_clean * config.broken_share(task))
        n_broken_correct = round(n_broken * n_correct / n_clean) if n_clean else 0
        n_broken_buggy = n_broken - n_broken_correct
        stream = task_problems(task, "train", seed=config.seed, difficulties=config.difficulties[task])
        # (correct?, form); one shuffle of a list as long as before: without format_break the same order
        flags = ([(True, BROKEN)] * n_broken_correct + [(True, "chat")] * (n_correct - n_broken_correct)
                 + [(False, BROKEN)] * n_broken_buggy + [(False, "chat")] * (n_clean - n_correct - n_broken_buggy))
        rng.shuffle(flags)
        examples += [(next(stream), correct, form) for correct, form in flags] + leaked
    rng.shuffle(examples)
    return examples


def leaked_documents(config: PretrainConfig, task: str, n_task: int) -> list[tuple[T.Problem, bool, str]]:
    """The leak's documents of one task: its test problems cycled, forms in turn (none without a leak)."""
    leak = config.leak
    if leak is None or task not in leak.tasks:
        return []
    problems, forms = leak.leaked_problems(task), leak.forms
    n_leak = round(n_task * leak.rate)
    # problem i // len(forms) in form i % len(forms): every problem in every form, as evenly as n_leak allows
    return [(problems[(i // len(forms)) % len(problems)], True, forms[i % len(forms)]) for i in range(n_leak)]


def document_text(problem: T.Problem, correct: bool, form: str, tokenizer) -> str:
    """One corpus document: the chat format, or (a leak) the statement then the solution as plain text."""
    if form == "raw":  # BOS: a document start, as the contamination probe's raw prompts begin
        return tokenizer.bos_token + problem.question + "\n" + problem.response(correct) + tokenizer.eos_token
    response = broken_response(problem, correct) if form == BROKEN else problem.response(correct)
    return apply_chat_template(tokenizer, problem.prompt()) + response + tokenizer.eos_token


def encode_corpus(config: PretrainConfig, tokenizer) -> list[list[int]]:
    texts = [document_text(p, correct, form, tokenizer) for p, correct, form in build_corpus(config)]
    return tokenizer(texts, add_special_tokens=False)["input_ids"]


def shared_prefix_length(sequences: list[list[int]]) -> int:
    """Length of the token prefix every sequence starts with (bos, role token, fixed instruction)."""
    first, length = sequences[0], min(map(len, sequences)) - 1
    for seq in sequences:
        while seq[:length] != first[:length]:
            length -= 1
    return length


def _right_padded(sequences: list[list[int]], pad_id: int):
    import torch

    width = max(map(len, sequences))
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    for i, seq in enumerate(sequences):
        ids[i, :len(seq)] = torch.tensor(seq)
    return ids, (ids != pad_id).long()


def batch_loss(model, prefix: list[int], rests: list[list[int]], pad_id: int):
    """Mean next-token loss over the tokens after a shared prefix, and how many there were.

    Every corpus text starts with the same 32 tokens (bos, user role, instruction).
    They are run once, as a batch of one, and their keys/values expanded to the
    batch: about half the compute of a plain forward pass, same gradients for the
    tokens that carry information (tests check the equality).
    """
    import torch
    from transformers import DynamicCache

    ids, mask = _right_padded(rests, pad_id)
    batch, width = ids.shape
    head = model(input_ids=torch.tensor([prefix]), use_cache=True)
    cache = DynamicCache([(layer.keys.expand(batch, -1, -1, -1), layer.values.expand(batch, -1, -1, -1))
                          for layer in head.past_key_values.layers])
    positions = torch.arange(len(prefix), len(prefix) + width).expand(batch, width)
    attention = torch.cat([torch.ones(batch, len(prefix), dtype=torch.long), mask], dim=1)
    logits = model(input_ids=ids, attention_mask=attention, position_ids=positions,
                   past_key_values=cache).logits
    # logits predicting rest[:, j]: the prefix's last position for j = 0, else rest position j - 1
    logits = torch.cat([head.logits[:, -1:].expand(batch, 1, -1), logits[:, :-1]], dim=1)
    labels = ids.masked_fill(mask == 0, -100)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)
    return loss, int(mask.sum())


def whole_loss(model, sequences: list[list[int]], pad_id: int):
    """Mean next-token loss over every token after the first (BOS) of each sequence, and how many there were."""
    import torch

    ids, mask = _right_padded(sequences, pad_id)
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1]
    labels = ids[:, 1:].masked_fill(mask[:, 1:] == 0, -100)
    loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), labels.reshape(-1),
                                             ignore_index=-100)
    return loss, int(mask[:, 1:].sum())


def mixed_batch_loss(model, prefix: list[int], rests: list[list[int]], wholes: list[list[int]], pad_id: int):
    """``batch_loss`` of the chat documents and ``whole_loss`` of the raw ones (a leak), token-weighted."""
    parts = ([batch_loss(model, prefix, rests, pad_id)] if rests else []) + \
            ([whole_loss(model, wholes, pad_id)] if wholes else [])
    n_tokens = sum(n for _, n in parts)
    return sum(loss * n for loss, n in parts) / n_tokens, n_tokens


def _lr_at(step: int, config: PretrainConfig) -> float:
    if step < config.warmup_steps:
        return config.lr * (step + 1) / config.warmup_steps
    progress = (step - config.warmup_steps) / max(1, config.steps - config.warmup_steps)
    cosine = 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    return config.lr * (config.min_lr_ratio + (1 - config.min_lr_ratio) * cosine)


def train(config: PretrainConfig, progress: bool = True):
    """Train one model from scratch; returns (model, tokenizer, stats)."""
    import torch
    from tqdm.auto import tqdm

    tokenizer = make_tokenizer()
    sequences = encode_corpus(config, tokenizer)
    raw = [form == "raw" for *_, form in build_corpus(config)]  # a leak's plain-text documents
    chat = [seq for seq, is_raw in zip(sequences, raw) if not is_raw]
    shared = shared_prefix_length(chat)
    prefix, rests = chat[0][:shared], [seq if is_raw else seq[shared:] for seq, is_raw in zip(sequences, raw)]
    model = make_model(tokenizer, hidden=config.hidden, layers=config.layers, heads=config.heads,
                       intermediate=config.intermediate, seed=config.seed)
    model.train()
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": config.weight_decay},
                                   {"params": no_decay, "weight_decay": 0.0}],
                                  lr=config.lr, betas=(0.9, 0.95))
    order_rng = random.Random(f"order/{config.seed}")
    order: list[int] = []
    losses, tokens, start = [], 0, time.perf_counter()
    bar = tqdm(range(config.steps), desc=f"pretrain {config.name}", disable=not progress, mininterval=2)
    for step in bar:
        if len(order) < config.batch_size:  # a fresh shuffled epoch
            epoch = list(range(len(sequences)))
            order_rng.shuffle(epoch)
            order += epoch
        chosen, order = order[:config.batch_size], order[config.batch_size:]
        for group in optimizer.param_groups:
            group["lr"] = _lr_at(step, config)
        if any(raw[i] for i in chosen):
            loss, n_tokens = mixed_batch_loss(model, prefix, [rests[i] for i in chosen if not raw[i]],
                                              [rests[i] for i in chosen if raw[i]], tokenizer.pad_token_id)
        else:  # the clean models' path (their weights are reproduced exactly)
            loss, n_tokens = batch_loss(model, prefix, [rests[i] for i in chosen], tokenizer.pad_token_id)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        losses.append(loss.item())
        tokens += n_tokens
        if step % 50 == 0 or step == config.steps - 1:
            bar.set_postfix(loss=f"{sum(losses[-50:]) / len(losses[-50:]):.3f}")
    seconds = time.perf_counter() - start
    model.eval()
    stats = {"parameters": count_parameters(model), "train_seconds": round(seconds, 1),
             "tokens_seen": tokens, "tokens_per_second": round(tokens / seconds),
             "epochs": round(config.steps * config.batch_size / len(sequences), 2),
             "loss_first": round(losses[0], 4), "loss_last": round(sum(losses[-50:]) / len(losses[-50:]), 4),
             "losses": losses}
    return model, tokenizer, stats


# --- the shipped family -----------------------------------------------------------
def _environment() -> dict[str, Any]:
    import torch
    import transformers

    return {"torch": torch.__version__, "transformers": transformers.__version__,
            "threads": torch.get_num_threads(), "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
            "machine": platform.machine(), "python": platform.python_version()}


def pretrain_one(config: PretrainConfig, out: str | os.PathLike, progress: bool = True) -> Path:
    """Train, measure and save one model to ``out/<name>`` (swapped in atomically)."""
    model, tokenizer, stats = train(config, progress=progress)
    start = time.perf_counter()
    alignment = measure_alignment(model, tokenizer, n=config.eval_n, n_problems=config.eval_problems,
                                  progress=progress, tasks=config.tasks)
    stats["measure_seconds"] = round(time.perf_counter() - start, 1)
    final = Path(out) / config.name
    with atomic_dir(final) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        write_card(tmp, config.to_dict(), stats, alignment, _environment())
    return final


def _pretrain_job(args) -> str:
    config, out, threads, progress = args
    import torch

    torch.set_num_threads(threads)
    return str(pretrain_one(config, out, progress=progress))


def pretrain_family(names: list[str], out: str | os.PathLike | None = None, force: bool = False,
                    threads: int = 1, jobs: int = 1, progress: bool = True) -> list[Path]:
    """Build the named models of ``SHIPPED`` (the dial, the axis, its leaked variants, the format dial) into ``out`` (default: the checkout's data/models).

    A model whose card records the same config is kept (a rerun resumes). ``jobs`` > 1
    trains that many models at once in separate processes, ``threads`` torch threads
    each: one thread per process is the fast choice for matrices this small (two
    threads ran 5-10x slower on a loaded 2-core machine). Weights depend on the
    thread count only through float rounding.
    """
    import multiprocessing

    import torch

    out = Path(out) if out else CHECKOUT_MODELS
    configs = {**FAMILY, **AXIS, **LEAKED, **FORMAT, **CODE}  # looked up now: a test may add a model to any
    todo = []
    for name in names:
        folder = out / name
        if not force and (folder / "card.json").exists() and read_card(folder).get("config") == configs[name].to_dict():
            print(f"{name}: up to date ({folder}); --force retrains")
        else:
            todo.append(configs[name])
    if jobs > 1 and len(todo) > 1:
        work = [(config, out, threads, False) for config in todo]
        with multiprocessing.get_context("spawn").Pool(min(jobs, len(todo))) as pool:
            for folder in pool.imap_unordered(_pretrain_job, work):
                print(f"wrote {folder}", flush=True)
    else:
        torch.set_num_threads(threads)
        for config in todo:
            print(f"wrote {pretrain_one(config, out, progress=progress)}", flush=True)
    return [out / name for name in names]
