"""The local GRPO engine: verl's PPO/GRPO training step, computed on a CPU (or one GPU).

One step, as verl 0.9.1's trainer does it with the study's recipe:

1. draw ``train_batch_size`` prompts (epoch-wise seeded shuffle, incomplete last batch
   dropped) and sample ``rollout_n`` responses each (``mirage.sample.hf``);
2. score every response with ``mirage.rewards.compute_score`` under the condition's
   reward variant; group rewards (majority vote) and log-prob rewards (entropy
   minimisation) then replace the score;
3. dynamic sampling: drop groups whose scores are all equal, draw more generation
   batches until ``train_batch_size`` groups are kept or ``max_num_gen_batches`` is
   reached, then train on what was kept;
4. advantages from the condition's estimator (``mirage.objectives``); +-1 estimators
   drop their unselected responses from the batch;
5. old log-probs recomputed by the current policy (for the first mini-batch, by its own
   first forward, which runs before any update), then ``ppo_epochs`` passes of PPO
   mini-batches (``ppo_mini_batch_size`` prompts' responses each) with the clipped
   loss (asymmetric + dual clip, token-mean over the whole mini-batch), AdamW, grad
   clipping, linear warm-up stepped once per training step. No KL, no reference.

Log-probs use logits / temperature, as verl's actor does. The prompt of a group is
run once and its KV cache shared by the group's responses (gradients flow through
it), which gives the same numbers as a forward over each prompt+response.

A run directory gets ``manifest.json``, ``logs/metrics-NNN.jsonl`` (verl's file-logger
schema), ``logs/example_acc.jsonl`` (per-example training accuracy, for one-shot
selection), optional ``rollouts/<step>.jsonl`` dumps, and HF checkpoints in verl's
layout with the optimizer state for resume. All randomness is derived from the seed
and the step, so a rerun (or a resumed run) gives identical metrics.
"""

from __future__ import annotations

import json
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from mirage import runs
from mirage.conditions import TESTBED_RECIPE, PAPER_RECIPE, Condition, Recipe, get_condition
from mirage.objectives import get_estimator, kept_responses, policy_loss
from mirage.sample.base import apply_chat_template, prompt_seed
from mirage.sample.hf import left_pad, positions_from_mask, sample_tokens, stop_token_ids
from mirage.tasks import Task, dataset_path, get_task

TRAINER_STATE = "trainer_state.pt"  # optimizer + loader state, next to actor/huggingface


# --- recipe and data ----------------------------------------------------------------
def resolve_recipe(task: Task, recipe: Recipe | None = None, overrides: Any = None) -> Recipe:
    """The task's default recipe (testbed or paper) with ``overrides`` (dict or KEY=VALUE pairs) applied."""
    recipe = (recipe or (TESTBED_RECIPE if task.kind == "testbed" else PAPER_RECIPE)).with_overrides(overrides)
    if recipe.use_kl_loss or recipe.use_kl_in_reward:
        raise ValueError("the local engine has no reference model: use_kl_loss/use_kl_in_reward must be False")
    return recipe


def load_rows(name: str, root: Any = None) -> list[dict]:
    """A verl-format dataset as a list of row dicts; testbed datasets are generated on first use."""
    path = dataset_path(name, root)
    if name.startswith("toy-"):  # generated on first use, regenerated if an older generator wrote it
        from mirage.testbed.tasks import ensure_dataset

        ensure_dataset(name, root)
    if not path.exists():
        raise FileNotFoundError(f"dataset {name!r} not found at {path}; prepare it with `mirage data prepare`")
    import pyarrow.parquet as pq

    rows = pq.read_table(path).to_pylist()
    for i, row in enumerate(rows):
        for key in ("data_source", "prompt", "reward_model"):
            if row.get(key) is None:
                raise ValueError(f"{path}: row {i} has no {key!r}")
        if not isinstance(row["reward_model"], dict) or row["reward_model"].get("ground_truth") is None:
            raise ValueError(f"{path}: row {i}: reward_model has no 'ground_truth'")
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def _row_index(row: dict, fallback: int) -> Any:
    extra = row.get("extra_info") or {}
    return extra.get("index", fallback)


class PromptStream:
    """verl's training loader: a seeded shuffle per epoch, the incomplete last batch dropped."""

    def __init__(self, n_rows: int, batch_size: int, seed: int, drawn: int = 0, name: str = "train set"):
        self.n_rows, self.batch_size, self.seed, self.drawn = n_rows, batch_size, seed, drawn
        self.per_epoch = n_rows // batch_size
        if self.per_epoch == 0:
            raise ValueError(f"{name}: {n_rows} rows make no batch of train_batch_size={batch_size} "
                             "(the loader drops incomplete batches, as verl's does)")

    def next(self) -> tuple[int, np.ndarray]:
        """(epoch, row indices) of the next batch."""
        epoch, k = divmod(self.drawn, self.per_epoch)
        order = np.random.default_rng([self.seed, epoch]).permutation(self.n_rows)
        self.drawn += 1
        return epoch, order[k * self.batch_size:(k + 1) * self.batch_size]


# --- one-shot data ------------------------------------------------------------------
def accuracy_history(run_dir: Any, per: str = "epoch") -> dict[str, list[float]]:
    """{example index: [training accuracy per epoch]} from a run's ``logs/example_acc.jsonl``.

    ``per="sample"``: the individual rollout outcomes instead (the mean of each visit
    expanded back to its 0/1 samples), for runs shorter than two epochs, where every
    per-epoch history has one entry and no variance.
    """
    path = Path(run_dir) / "logs" / "example_acc.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"{path}: no per-example accuracy record; train a full-data ground_truth run first")
    cells: dict[str, dict[int, list[float]]] = {}
    samples: dict[str, list[float]] = {}
    for rec in runs.read_jsonl(path):
        key = str(rec["index"])
        cells.setdefault(key, {}).setdefault(int(rec["epoch"]), []).append(float(rec["acc"]))
        correct = int(round(float(rec["acc"]) * int(rec["n"])))
        samples.setdefault(key, []).extend([1.0] * correct + [0.0] * (int(rec["n"]) - correct))
    if per == "sample":
        return samples
    if per != "epoch":
        raise ValueError(f"per must be 'epoch' or 'sample', got {per!r}")
    return {key: [float(np.mean(v)) for _, v in sorted(epochs.items())] for key, epochs in cells.items()}


def select_one_shot(condition: Condition, rows: list[dict], seed: int, run_dir: Path,
                    history_run: Any = None, index: Any = None) -> dict[str, Any]:
    """Which training example a one-shot condition uses, and why (recorded in the manifest)."""
    from mirage.data import one_shot

    ids = [str(_row_index(r, i)) for i, r in enumerate(rows)]
    if index is not None:
        choice = {"index": str(index), "criterion": "given"}
    elif condition.data == "one_shot_random":
        choice = {"index": one_shot.select_random(ids, seed), "criterion": f"random(seed={seed})"}
    else:
        history_run = Path(history_run) if history_run else run_dir.parent.parent / "ground_truth" / run_dir.name
        history = accuracy_history(history_run)
        per = "epoch"
        if max(len(v) for v in history.values()) < 2:  # shorter than two epochs: no per-epoch variance
            history, per = accuracy_history(history_run, per="sample"), "sample"
        known = set(ids)
        history = {k: v for k, v in history.items() if k in known}
        best = one_shot.select_by_historical_variance(history, rank=1)
        choice = {"index": best, "criterion": f"historical variance (std per {per}, rank 1)",
                  "history_run": str(history_run), "std": float(np.std(history[best]))}
    if choice["index"] not in ids:
        raise KeyError(f"one-shot example {choice['index']!r} is not an extra_info.index of the training set")
    return choice


# --- rollouts -------------------------------------------------------------------------
@dataclass
class Batch:
    """Responses of some prompt groups, with everything the update needs. Row r is a response."""

    prompt_ids: list[list[int]]  # one per group
    rows: list[dict]  # the dataset row of each group
    group: torch.Tensor  # (R,) group of each response
    responses: torch.Tensor  # (R, L) right-padded, stop token included
    lengths: torch.Tensor  # (R,)
    rollout_logprobs: torch.Tensor  # (R, L)
    finish: list[str]
    texts: list[str]
    preds: list[Any]
    score: torch.Tensor  # (R,) the training reward
    acc: torch.Tensor  # (R,) answer correct (no format gate), whatever the reward
    fmt: torch.Tensor  # (R,) format ok
    rid: torch.Tensor  # (R,) response id within the step (position among all responses generated)

    @property
    def mask(self) -> torch.Tensor:
        return (torch.arange(self.responses.shape[1])[None, :] < self.lengths[:, None]).float()

    def take(self, rows: torch.Tensor) -> "Batch":
        """The responses ``rows`` (a bool mask or indices), groups renumbered in order of appearance."""
        rows = rows.nonzero().squeeze(-1) if rows.dtype == torch.bool else rows
        old_groups = torch.unique_consecutive(self.group[rows]).tolist()
        remap = {g: i for i, g in enumerate(old_groups)}
        width = int(self.lengths[rows].max()) if len(rows) else 1
        r = rows.tolist()
        return Batch(
            prompt_ids=[self.prompt_ids[g] for g in old_groups], rows=[self.rows[g] for g in old_groups],
            group=torch.tensor([remap[int(g)] for g in self.group[rows]], dtype=torch.long),
            responses=self.responses[rows, :width], lengths=self.lengths[rows],
            rollout_logprobs=self.rollout_logprobs[rows, :width], finish=[self.finish[i] for i in r],
            texts=[self.texts[i] for i in r], preds=[self.preds[i] for i in r],
            score=self.score[rows], acc=self.acc[rows], fmt=self.fmt[rows], rid=self.rid[rows])

    def take_groups(self, groups: Sequence[int]) -> "Batch":
        keep = torch.zeros(len(self.prompt_ids), dtype=torch.bool)
        keep[list(groups)] = True
        return self.take(keep[self.group])

    @staticmethod
    def cat(batches: Sequence["Batch"], pad_token_id: int) -> "Batch":
        width = max(b.responses.shape[1] for b in batches)
        pad = lambda t, v: torch.nn.functional.pad(t, (0, width - t.shape[1]), value=v)  # noqa: E731
        offsets = np.cumsum([0] + [len(b.prompt_ids) for b in batches])
        return Batch(
            prompt_ids=[p for b in batches for p in b.prompt_ids], rows=[r for b in batches for r in b.rows],
            group=torch.cat([b.group + int(o) for b, o in zip(batches, offsets)]),
            responses=torch.cat([pad(b.responses, pad_token_id) for b in batches]),
            lengths=torch.cat([b.lengths for b in batches]),
            rollout_logprobs=torch.cat([pad(b.rollout_logprobs, 0.0) for b in batches]),
            finish=[f for b in batches for f in b.finish], texts=[t for b in batches for t in b.texts],
            preds=[p for b in batches for p in b.preds], score=torch.cat([b.score for b in batches]),
            acc=torch.cat([b.acc for b in batches]), fmt=torch.cat([b.fmt for b in batches]),
            rid=torch.cat([b.rid for b in batches]))


class Policy:
    """The model, its tokenizer and how to talk to it (encode prompts, sample, decode)."""

    def __init__(self, model: Any, tokenizer: Any):
        self.model, self.tokenizer = model, tokenizer
        self.pad_token_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        self.stop_ids = stop_token_ids(model, tokenizer)
        self._encoded: dict[str, list[int]] = {}

    def encode(self, messages: list[dict]) -> list[int]:
        text = apply_chat_template(self.tokenizer, list(messages))
        if text not in self._encoded:
            self._encoded[text] = self.tokenizer(text, add_special_tokens=False)["input_ids"]
        return self._encoded[text]

    def decode(self, ids: Sequence[int]) -> str:
        return self.tokenizer.decode([int(i) for i in ids if int(i) not in self.stop_ids], skip_special_tokens=False)

    def sample(self, prompt_ids: list[list[int]], seeds: list[int], n: int, temperature: float, top_p: float,
               max_tokens: int):
        was_training = self.model.training
        self.model.eval()
        batch = sample_tokens(self.model, prompt_ids, seeds, n=n, temperature=temperature, top_p=top_p,
                              max_tokens=max_tokens, stop_token_ids=self.stop_ids, pad_token_id=self.pad_token_id)
        self.model.train(was_training)
        texts = [self.decode(batch.responses[r, :int(batch.lengths[r])].tolist()) for r in range(len(batch.lengths))]
        return batch, texts


def score_responses(rows: list[dict], group: torch.Tensor, texts: list[str], kwargs: dict[str, Any],
                    sample_offset: int = 0) -> list[dict]:
    """``compute_score`` for every response (``sample_index`` keeps equal texts' coins independent)."""
    from mirage.rewards import compute_score

    out = []
    for r, (g, text) in enumerate(zip(group.tolist(), texts)):
        row = rows[g]
        out.append(compute_score(row["data_source"], text, row["reward_model"]["ground_truth"],
                                 row.get("extra_info"), sample_index=sample_offset + r, **kwargs))
    return out


def rollout(policy: Policy, rows: list[dict], condition: Condition, recipe: Recipe, seed: int, step: int,
            gen_key: str, release_faithful: bool, sample_offset: int = 0) -> Batch:
    """Sample ``rollout_n`` responses per row and compute the condition's training reward."""
    prompt_ids = [policy.encode(r["prompt"]) for r in rows]
    for i, p in enumerate(prompt_ids):
        if len(p) > recipe.max_prompt_length:
            raise ValueError(f"prompt of row index {_row_index(rows[i], i)} has {len(p)} tokens "
                             f"> max_prompt_length={recipe.max_prompt_length}")
    seeds = [prompt_seed(seed, f"{gen_key}/{i}") for i in range(len(rows))]
    sampled, texts = policy.sample(prompt_ids, seeds, recipe.rollout_n, recipe.temperature, recipe.top_p,
                                   recipe.max_response_length)
    kwargs = condition.score_kwargs(seed=seed, step=step, release_faithful=release_faithful)
    scored = score_responses(rows, sampled.prompt_index, texts, kwargs, sample_offset)
    score = torch.tensor([float(s["score"]) for s in scored])
    fmt = torch.tensor([float(s["format"]) for s in scored])
    preds = [s.get("pred") for s in scored]
    if condition.reward == "majority_vote":
        from mirage.rewards import majority_vote_rewards

        for g, row in enumerate(rows):
            idx = (sampled.prompt_index == g).nonzero().squeeze(-1)
            votes = majority_vote_rewards([preds[i] for i in idx.tolist()], fmt[idx].tolist(), row["data_source"],
                                          math_checker=kwargs.get("math_checker"), release_faithful=release_faithful)
            score[idx] = torch.tensor([float(v) for v in votes])
    elif condition.reward == "entropy_min":
        from mirage.rewards import mean_token_logprob

        score = torch.as_tensor(mean_token_logprob(sampled.logprobs, sampled.response_mask), dtype=torch.float32)
    return Batch(prompt_ids=prompt_ids, rows=list(rows), group=sampled.prompt_index, responses=sampled.responses,
                 lengths=sampled.lengths, rollout_logprobs=sampled.logprobs, finish=sampled.finish_reasons,
                 texts=texts, preds=preds, score=score, acc=torch.tensor([float(s["acc"]) for s in scored]), fmt=fmt,
                 rid=torch.arange(len(texts)) + sample_offset)


def varied_groups(batch: Batch) -> list[int]:
    """Groups whose scores are not all equal (dynamic sampling keeps these)."""
    keep = []
    for g in range(len(batch.prompt_ids)):
        s = batch.score[batch.group == g]
        if bool((s != s[0]).any()):
            keep.append(g)
    return keep


# --- the update -----------------------------------------------------------------------
def response_logprobs(model: Any, batch: Batch, rows: torch.Tensor, temperature: float, pad_token_id: int,
                      with_entropy: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Log-probs (and entropies) of the responses ``rows`` under ``model``, (len(rows), L)."""
    from transformers import DynamicCache

    groups, local = torch.unique(batch.group[rows], return_inverse=True)
    ids, pmask = left_pad([batch.prompt_ids[g] for g in groups.tolist()], pad_token_id)
    out = model(input_ids=ids, attention_mask=pmask, position_ids=positions_from_mask(pmask),
                past_key_values=DynamicCache(), use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1][local][:, None]  # predicts each response's first token
    responses, lengths = batch.responses[rows], batch.lengths[rows]
    width = int(lengths.max())
    responses = responses[:, :width]
    if width > 1:
        cache = out.past_key_values
        cache.batch_select_indices(local)  # the group's prompt cache, shared by its responses
        rmask = (torch.arange(width - 1)[None, :] < lengths[:, None]).long()
        attn = torch.cat([pmask[local], rmask], dim=1)
        pos = pmask.sum(-1)[local][:, None] + torch.arange(width - 1)[None, :]
        more = model(input_ids=responses[:, :-1], attention_mask=attn, position_ids=pos, past_key_values=cache,
                     use_cache=True).logits
        logits = torch.cat([logits, more], dim=1)
    logp_all = torch.log_softmax(logits.float() / temperature, dim=-1)
    logp = logp_all.gather(-1, responses[..., None]).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1) if with_entropy else None
    return logp, entropy


def _chunks(n: int, size: int) -> list[torch.Tensor]:
    return [torch.arange(i, min(i + size, n)) for i in range(0, n, max(1, size))]


def update_policy(model: Any, optimizer: torch.optim.Optimizer, batch: Batch, advantages: torch.Tensor,
                  recipe: Recipe, pad_token_id: int, micro_batch_size: int | None = None) -> dict[str, float]:
    """Old log-probs, then ``ppo_epochs`` passes over PPO mini-batches; metrics averaged over
    mini-batches, as verl does.

    Old log-probs are the current policy's, taken before any update (verl's
    ``compute_log_prob``). The first mini-batch's come from its own first training
    forward, which runs before the first optimizer step: the same numbers, one
    forward less. ``timing_s/old_log_prob`` times the other mini-batches' forwards.
    """
    start = time.perf_counter()
    mask = batch.mask
    mini_batches = _chunks(len(batch.lengths), recipe.ppo_mini_batch_size * recipe.rollout_n)
    old_logprobs = torch.zeros_like(mask)
    with torch.no_grad():
        model.eval()
        for rows in mini_batches[1:]:
            logp, _ = response_logprobs(model, batch, rows, recipe.temperature, pad_token_id)
            old_logprobs[rows, :logp.shape[1]] = logp
    timing = time.perf_counter() - start
    params = [p for p in model.parameters() if p.requires_grad]
    acc: dict[str, list[float]] = {}
    model.train()
    for epoch in range(recipe.ppo_epochs):
        for i, mb in enumerate(mini_batches):
            n_tokens = mask[mb].sum()
            optimizer.zero_grad(set_to_none=True)
            mb_metrics: dict[str, list[float]] = {}
            for micro in _chunks(len(mb), micro_batch_size or len(mb)):
                rows = mb[micro]
                width = int(batch.lengths[rows].max())
                logp, entropy = response_logprobs(model, batch, rows, recipe.temperature, pad_token_id, True)
                if epoch == 0 and i == 0:  # no update yet: this forward's log-probs are the old ones
                    old_logprobs[rows, :width] = logp.detach()
                m = mask[rows, :width]
                loss, metrics = policy_loss(old_logprobs[rows, :width], logp, advantages[rows, :width], m,
                                            recipe.clip_ratio_low, recipe.clip_ratio_high, recipe.clip_ratio_c,
                                            recipe.loss_agg_mode, batch_num_tokens=n_tokens)
                metrics.update({"actor/pg_loss": float(loss.detach()),
                                "actor/entropy": float((entropy.detach() * m).sum() / n_tokens)})
                if recipe.entropy_coeff:  # verl: policy_loss = pg_loss - entropy_coeff * entropy (token-mean)
                    loss = loss - recipe.entropy_coeff * (entropy * m).sum() / n_tokens
                loss.backward()
                for k, v in metrics.items():
                    mb_metrics.setdefault(k, []).append(v)
            grad_norm = torch.nn.utils.clip_grad_norm_(params, recipe.grad_clip)
            if torch.isfinite(grad_norm):  # verl skips the step on a non-finite gradient
                optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            mb_metrics["actor/grad_norm"] = [float(grad_norm)]
            # pg_loss and entropy add up over micro-batches (each is normalised by the mini-batch's tokens)
            for k, v in mb_metrics.items():
                acc.setdefault(k, []).append(sum(v) if k in ("actor/pg_loss", "actor/entropy") else float(np.mean(v)))
    return {**{k: float(np.mean(v)) for k, v in acc.items()}, "timing_s/old_log_prob": timing}


def lr_factor(step: int, warmup: int) -> float:
    """verl's constant schedule with linear warm-up, stepped once per training step (step is 1-based)."""
    return 1.0 if warmup <= 0 or step - 1 >= warmup else (step - 1) / warmup


# --- validation -------------------------------------------------------------------------
def validate(policy: Policy, val_sets: dict[str, list[dict]], recipe: Recipe, seed: int,
             batch_size: int = 256) -> dict[str, float]:
    """``val-core/<data_source>/acc/mean@<val_n>``: accuracy without the format gate, as verl's validation."""
    from mirage.rewards import compute_score

    sums: dict[str, list[float]] = {}
    for name, rows in val_sets.items():
        for start in range(0, len(rows), batch_size):
            chunk = rows[start:start + batch_size]
            seeds = [prompt_seed(seed, f"val/{name}/{_row_index(r, start + i)}") for i, r in enumerate(chunk)]
            sampled, texts = policy.sample([policy.encode(r["prompt"]) for r in chunk], seeds, recipe.val_n,
                                           recipe.val_temperature, recipe.val_top_p, recipe.max_response_length)
            for g, text in zip(sampled.prompt_index.tolist(), texts):
                row = chunk[g]
                s = compute_score(row["data_source"], text, row["reward_model"]["ground_truth"], row.get("extra_info"))
                sums.setdefault(row["data_source"], []).append(float(s["acc"]))
    return {runs.VAL_ACC.format(data_source=ds, n=recipe.val_n): float(np.mean(v)) for ds, v in sums.items()}


# --- checkpoints ------------------------------------------------------------------------
def save_checkpoint(run_dir: Path, step: int, policy: Policy, optimizer: torch.optim.Optimizer,
                    drawn: int) -> Path:
    """verl's layout, written to a temporary folder and renamed (a kill never leaves half a checkpoint)."""
    root = run_dir / "checkpoints"
    final = root / f"global_step_{step}"
    with runs.atomic_dir(final) as tmp:
        hf = tmp / "actor" / "huggingface"
        policy.model.save_pretrained(hf)
        policy.tokenizer.save_pretrained(hf)
        torch.save({"step": step, "drawn": drawn, "optimizer": optimizer.state_dict()},
                   tmp / "actor" / TRAINER_STATE)
    runs.write_text_atomic(root / "latest_checkpointed_iteration.txt", f"{step}\n")
    for _, older in runs.list_checkpoints(run_dir):  # keep older weights for sweeps, drop their optimizer state
        state = older.parent / TRAINER_STATE
        if older.parent.parent != final and state.exists():
            state.unlink()
    return final


def latest_resumable(run_dir: Path) -> tuple[int, Path] | None:
    found = [(s, hf) for s, hf in runs.list_checkpoints(run_dir) if (hf.parent / TRAINER_STATE).exists()]
    return found[-1] if found else None


# --- the run ------------------------------------------------------------------------------
def default_run_dir(model: str, task: str, condition: str, seed: int, root: Any = "runs") -> Path:
    return Path(root) / "local" / Path(str(model)).name / task / condition / f"seed{seed}"


def _versions() -> dict[str, str]:
    import transformers

    from mirage import __version__

    return {"mirage": __version__, "torch": torch.__version__, "transformers": transformers.__version__,
            "numpy": np.__version__, "python": sys.version.split()[0], "platform": platform.platform()}


def train(model: str, task: str, condition: str, seed: int = 0, run_dir: Any = None, recipe: Recipe | None = None,
          overrides: Any = None, release_faithful: bool = False, progress: bool = True, data_root: Any = None,
          threads: int | None = None, micro_batch_size: int | None = None, validate_before: bool = True,
          dump_rollouts: bool = False, history_run: Any = None, one_shot_index: Any = None,
          stop_after: int | None = None, val_problems: int | None = None) -> Path:
    """Train ``model`` on ``task`` under ``condition``; return the run directory.

    A finished run is returned as is; an unfinished one resumes from its latest
    checkpoint. ``recipe``: default ``TESTBED_RECIPE`` for testbed tasks, else the
    paper's; ``overrides``: recipe fields to change (dict; strings are parsed).

    ``threads``: torch CPU threads (default: the run's recorded value, else
    $MIRAGE_TORCH_THREADS, else 1; recorded, since float results depend on it).
    ``micro_batch_size``: responses per forward inside a PPO mini-batch (default: all).
    ``validate_before``: validate at step 0 (verl's val_before_train).
    ``dump_rollouts``: write every response with its scores, whether it was trained on
    and its advantage to ``rollouts/<step>.jsonl``.
    ``history_run`` / ``one_shot_index``: where the one-shot example comes from
    (default: the sibling ``ground_truth`` run's ``logs/example_acc.jsonl``).
    ``stop_after``: stop after that many steps of this attempt (an interruption; the
    manifest says "stopped" and a rerun resumes). ``val_problems``: validate on the
    first N problems of each eval set only (default: all).
    """
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no loading/saving bars at every checkpoint
    try:
        return _train(model, task, condition, seed, run_dir, recipe, overrides, release_faithful, progress, data_root,
                      threads, micro_batch_size, validate_before, dump_rollouts, history_run, one_shot_index,
                      stop_after, val_problems)
    finally:
        if bars:
            hf_logging.enable_progress_bar()


def _train(model, task, condition, seed, run_dir, recipe, overrides, release_faithful, progress, data_root, threads,
           micro_batch_size, validate_before, dump_rollouts, history_run, one_shot_index, stop_after,
           val_problems) -> Path:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from mirage.testbed.models import model_path

    cond, task_obj = get_condition(condition), get_task(task)
    recipe = resolve_recipe(task_obj, recipe, overrides)
    run_dir = Path(run_dir) if run_dir else default_run_dir(model, task, condition, seed)
    identity = {"backend": "local", "model": str(model), "task": task, "condition": cond.name, "seed": int(seed)}
    manifest = runs.read_manifest(run_dir)
    if manifest:
        clash = {k: (manifest.get(k), v) for k, v in identity.items() if manifest.get(k) != v}
        if clash:
            raise ValueError(f"{run_dir}: holds a different run ({clash}); use another run_dir")
        if manifest.get("status") == "finished":
            return run_dir
        if manifest.get("recipe") and manifest["recipe"] != recipe.to_dict():
            raise ValueError(f"{run_dir}: started with another recipe; use another run_dir to change it")
    threads = int(threads or manifest.get("threads") or runs.default_threads())
    torch.set_num_threads(threads)
    torch.manual_seed(seed)  # nothing below draws from it; set for any library code that might

    train_rows = load_rows(task_obj.train, data_root)
    val_sets = {name: load_rows(name, data_root)[:val_problems] for name in task_obj.evals}
    one_shot = None
    if cond.data != "full":
        one_shot = manifest.get("one_shot") or select_one_shot(cond, train_rows, seed, run_dir, history_run,
                                                               one_shot_index)
        row = next(r for i, r in enumerate(train_rows) if str(_row_index(r, i)) == one_shot["index"])
        train_rows = [row] * recipe.train_batch_size

    resume = latest_resumable(run_dir)
    source = str(resume[1]) if resume else model_path(model)
    policy = Policy(AutoModelForCausalLM.from_pretrained(source, dtype=torch.float32),
                    AutoTokenizer.from_pretrained(source))
    optimizer = torch.optim.AdamW(policy.model.parameters(), lr=recipe.lr, weight_decay=recipe.weight_decay)
    start, drawn = 0, 0
    if resume:
        state = torch.load(resume[1].parent / TRAINER_STATE, weights_only=True)
        optimizer.load_state_dict(state["optimizer"])
        start, drawn = int(state["step"]), int(state["drawn"])
        _truncate_example_acc(run_dir, start)
    stream = PromptStream(len(train_rows), recipe.train_batch_size, seed, drawn, name=task_obj.train)

    runs.update_manifest(run_dir, **identity, model_path=model_path(model), condition_spec=cond.to_dict(),
                         recipe=recipe.to_dict(), release_faithful=release_faithful, threads=threads,
                         estimator=cond.estimator, one_shot=one_shot, versions=_versions(), status="running",
                         attempts=int(manifest.get("attempts", 0)) + 1, resumed_from_step=start,
                         train_dataset=task_obj.train, eval_datasets=list(task_obj.evals),
                         started=manifest.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S"))
    metrics_path = runs.next_metrics_path(run_dir)
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        if start == 0 and validate_before and recipe.val_freq > 0:
            runs.append_jsonl(metrics_path, [{"step": 0, "data": validate(policy, val_sets, recipe, seed)}])
        steps = range(start + 1, recipe.total_steps + 1)
        if stop_after is not None:
            steps = steps[:stop_after]
        from tqdm.auto import tqdm

        bar = tqdm(steps, desc=f"{cond.name} {task} seed{seed}", disable=not progress, initial=start,
                   total=recipe.total_steps)
        for step in bar:
            metrics = train_step(policy, optimizer, stream, train_rows, cond, recipe, seed, step, release_faithful,
                                 run_dir, micro_batch_size, dump_rollouts, record_history=cond.data == "full")
            if recipe.val_freq > 0 and (step % recipe.val_freq == 0 or step == recipe.total_steps):
                metrics.update(validate(policy, val_sets, recipe, seed))
            # log first: a kill between the two re-runs this step from the previous checkpoint (the
            # later attempt's line wins), whereas the other order would lose the step's metrics
            runs.append_jsonl(metrics_path, [{"step": step, "data": metrics}])
            if (recipe.save_freq > 0 and step % recipe.save_freq == 0) or step == recipe.total_steps:
                save_checkpoint(run_dir, step, policy, optimizer, stream.drawn)
            bar.set_postfix(score=f"{metrics['critic/score/mean']:.2f}", acc=f"{metrics['train/acc/mean']:.2f}")
        finished = (steps[-1] if len(steps) else start) >= recipe.total_steps
        runs.update_manifest(run_dir, status="finished" if finished else "stopped",
                             finished=time.strftime("%Y-%m-%dT%H:%M:%S") if finished else None,
                             wall_seconds=round(float(manifest.get("wall_seconds", 0)) + time.perf_counter() - wall, 2),
                             cpu_seconds=round(float(manifest.get("cpu_seconds", 0)) + time.process_time() - cpu, 2))
    except BaseException as e:
        runs.update_manifest(run_dir, status="failed", error=f"{type(e).__name__}: {e}"[:500])
        raise
    return run_dir


def train_step(policy: Policy, optimizer: torch.optim.Optimizer, stream: PromptStream, train_rows: list[dict],
               cond: Condition, recipe: Recipe, seed: int, step: int, release_faithful: bool, run_dir: Path,
               micro_batch_size: int | None = None, dump_rollouts: bool = False,
               record_history: bool = False) -> dict[str, float]:
    """One training step (rollouts, rewards, dynamic sampling, advantages, PPO update); returns its metrics."""
    t0 = time.perf_counter()
    # 1-3: generation batches until enough groups are kept (dynamic sampling)
    generated: list[Batch] = []
    kept: list[Batch] = []
    n_kept = 0
    history: list[dict] = []
    max_gen = recipe.max_num_gen_batches if recipe.max_num_gen_batches > 0 else max(1, stream.per_epoch)
    while True:
        epoch, idx = stream.next()
        rows = [train_rows[i] for i in idx]
        gen_no = len(generated)
        b = rollout(policy, rows, cond, recipe, seed, step, f"train/{stream.drawn - 1}", release_faithful,
                    sample_offset=gen_no * len(rows) * recipe.rollout_n)
        generated.append(b)
        if record_history:
            history += [{"step": step, "epoch": epoch, "index": _row_index(r, int(i)),
                         "acc": float(b.acc[b.group == g].mean()), "n": recipe.rollout_n}
                        for g, (r, i) in enumerate(zip(rows, idx))]
        if not recipe.dynamic_sampling:
            kept, n_kept = [b], len(rows)
            break
        groups = varied_groups(b)
        kept.append(b.take_groups(groups))
        n_kept += len(groups)
        if n_kept >= recipe.train_batch_size or len(generated) >= max_gen:
            break
    t_gen = time.perf_counter()
    everything = Batch.cat(generated, policy.pad_token_id)
    metrics: dict[str, float] = {
        "train/acc/mean": float(everything.acc.mean()), "train/format/mean": float(everything.fmt.mean()),
        "train/kept_groups": float(min(n_kept, recipe.train_batch_size)),
        "train/num_gen_batches": float(len(generated)), "actor/lr": recipe.lr * lr_factor(step, recipe.lr_warmup_steps),
    }
    if history:
        runs.append_jsonl(run_dir / "logs" / "example_acc.jsonl", history)

    # 4: advantages on the kept groups (the first train_batch_size of them)
    batch = Batch.cat([k for k in kept if len(k.prompt_ids)], policy.pad_token_id) if n_kept else None
    if batch is not None and len(batch.prompt_ids) > recipe.train_batch_size:
        batch = batch.take_groups(range(recipe.train_batch_size))
    update: dict[str, float] = {}
    used_adv: dict[int, float] = {}  # response id -> its advantage, for responses that were trained on
    if batch is not None:
        mask = batch.mask
        token_rewards = torch.zeros_like(mask)
        token_rewards[torch.arange(len(batch.lengths)), batch.lengths - 1] = batch.score  # outcome on the last token
        estimator = get_estimator(cond.estimator)
        advantages, _ = estimator(token_rewards, mask, batch.group.numpy(),
                                  norm_adv_by_std_in_grpo=recipe.norm_adv_by_std_in_grpo, **cond.estimator_kwargs)
        keep = kept_responses(cond.estimator, advantages)
        metrics["train/kept_responses"] = float(keep.float().mean())
        scored = batch  # score metrics describe the responses the rewards were given to
        if not bool(keep.any()):  # e.g. +-1 NSR on a batch without a wrong answer
            batch = None
    if batch is not None:
        if not bool(keep.all()):
            batch, advantages = batch.take(keep), advantages[keep][:, :int(batch.lengths[keep].max())]
        mask = batch.mask
        used_adv = dict(zip(batch.rid.tolist(), advantages[:, 0].tolist()))
        metrics.update({
            "critic/score/mean": float(scored.score.mean()), "critic/rewards/mean": float(scored.score.mean()),
            "critic/advantages/mean": float((advantages * mask).sum() / mask.sum()),
            "response_length/mean": float(batch.lengths.float().mean()),
            "response_length/clip_ratio": float(np.mean([f == "length" for f in batch.finish])),
        })
        # 5: the PPO update (old log-probs first) at this step's learning rate
        for group in optimizer.param_groups:
            group["lr"] = recipe.lr * lr_factor(step, recipe.lr_warmup_steps)
        update = update_policy(policy.model, optimizer, batch, advantages, recipe, policy.pad_token_id,
                               micro_batch_size)
    else:  # nothing to train on (no group kept by dynamic sampling, or none selected): no update
        metrics.setdefault("train/kept_responses", 0.0)
        metrics.update({"critic/score/mean": float(everything.score.mean()),
                        "critic/rewards/mean": float(everything.score.mean()), "critic/advantages/mean": 0.0,
                        "response_length/mean": float(everything.lengths.float().mean()),
                        "response_length/clip_ratio": float(np.mean([f == "length" for f in everything.finish])),
                        "actor/pg_loss": 0.0, "actor/pg_clipfrac": 0.0,
                        "actor/pg_clipfrac_lower": 0.0, "actor/ppo_kl": 0.0, "actor/grad_norm": 0.0,
                        "actor/entropy": float("nan")})
    metrics.update(update)
    if dump_rollouts:
        _dump(run_dir, step, everything, used_adv)
    metrics["timing_s/gen"] = t_gen - t0
    metrics["timing_s/step"] = time.perf_counter() - t0
    return metrics


def _dump(run_dir: Path, step: int, batch: Batch, used_adv: dict[int, float]) -> None:
    """verl's rollout dump, plus whether each response was trained on and its advantage."""
    recs = [{"step": step, "index": _row_index(batch.rows[g], g), "group": g, "rid": int(batch.rid[r]),
             "used": int(batch.rid[r]) in used_adv, "advantage": used_adv.get(int(batch.rid[r])),
             "text": batch.texts[r],
             "pred": batch.preds[r], "score": float(batch.score[r]), "acc": float(batch.acc[r]),
             "format": float(batch.fmt[r]), "length": int(batch.lengths[r]), "finish_reason": batch.finish[r],
             "mean_logprob": float(batch.rollout_logprobs[r, :int(batch.lengths[r])].mean())}
            for r, g in enumerate(batch.group.tolist())]
    path = run_dir / "rollouts" / f"{step}.jsonl"
    path.unlink(missing_ok=True)  # a resumed step is rewritten, not appended twice
    runs.append_jsonl(path, recs)


def _truncate_example_acc(run_dir: Path, step: int) -> None:
    """Forget the per-example records of steps after the checkpoint a resume starts from."""
    path = run_dir / "logs" / "example_acc.jsonl"
    if path.exists():
        keep = [r for r in runs.read_jsonl(path) if int(r["step"]) <= step]
        with runs.atomic_path(path) as tmp:
            tmp.write_text("".join(json.dumps(r) + "\n" for r in keep), encoding="utf-8")


def main(args: Any) -> int:
    """``mirage train --backend local``."""
    verl_only = [flag for flag, value in (("--train-file", getattr(args, "train_file", None)),
                                          ("--n-gpus-per-node", getattr(args, "n_gpus_per_node", None)),
                                          ("--nnodes", getattr(args, "nnodes", None)),
                                          ("--extra", getattr(args, "extra", None))) if value]
    if verl_only:
        raise SystemExit(f"mirage train --backend local: {', '.join(verl_only)} only apply to --backend verl")
    if getattr(args, "dry_run", False):
        recipe = resolve_recipe(get_task(args.task), overrides=dict(args.overrides))
        run_dir = args.run_dir or default_run_dir(args.model, args.task, args.condition, args.seed)
        print(json.dumps({"run_dir": str(run_dir), "condition": get_condition(args.condition).to_dict(),
                          "recipe": recipe.to_dict()}, indent=2))
        return 0
    run_dir = train(args.model, args.task, args.condition, seed=args.seed, run_dir=args.run_dir,
                    overrides=dict(args.overrides), release_faithful=args.release_faithful,
                    data_root=args.data_root)
    manifest = runs.read_manifest(run_dir)
    print(f"{run_dir}: {manifest.get('status')}")
    return 0 if manifest.get("status") == "finished" else 1
