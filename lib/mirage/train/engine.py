"""The local GRPO engine: verl's PPO/GRPO training step, computed on a CPU (or one GPU).

One step, as verl 0.9.1's trainer does it with the study's recipe:

1. draw ``train_batch_size`` prompts (``loop.PromptStream``) and sample ``rollout_n``
   responses each (``mirage.sample.hf``);
2. score every response with ``mirage.rewards.compute_score`` under the condition's
   reward; a group or log-prob reward then re-scores them through the reward registry
   (``Reward.rescore``), exactly as verl's replay buffer does;
3. dynamic sampling (``mirage.train.sampling``): drop groups whose scores are all equal,
   draw more generation batches until ``train_batch_size`` groups are kept or
   ``max_num_gen_batches`` is reached, then train on what was kept;
4. advantages from the condition's estimator (``mirage.objectives``); +-1 estimators
   drop their unselected responses from the batch;
5. old log-probs recomputed by the current policy (for the first mini-batch, by its own
   first forward, which runs before any update), then ``ppo_epochs`` passes of PPO
   mini-batches (``ppo_mini_batch_size`` prompts' responses each) with the clipped
   loss (asymmetric + dual clip, token-mean over the whole mini-batch), AdamW, grad
   clipping, linear warm-up stepped once per training step. No KL, no reference.

Log-probs use logits / temperature, as verl's actor does. The prompt of a group is
run once and its KV cache shared by the group's responses (gradients flow through
it), which gives the same numbers as a forward over each prompt+response. All
randomness is derived from the seed and the step, so a rerun gives identical metrics.
The run around the step (checkpoints, resume, logs) is ``mirage.train.loop``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from mirage.conditions import Condition
from mirage.objectives import get_estimator, policy_loss
from mirage.recipes import Recipe
from mirage.rewards import Responses, compute_score
from mirage.rewards.group import vote_values
from mirage.sample.base import apply_chat_template, prompt_seed
from mirage.sample.hf import left_pad, positions_from_mask, sample_tokens, stop_token_ids
from mirage.train import sampling


def row_index(row: dict, fallback: int) -> Any:
    extra = row.get("extra_info") or {}
    return extra.get("index", fallback)


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
    procedures: list[str | None]  # which procedure each answer follows, where the task knows (compute_score)
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
            procedures=[self.procedures[i] for i in r], score=self.score[rows], acc=self.acc[rows], fmt=self.fmt[rows], rid=self.rid[rows])

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
            preds=[p for b in batches for p in b.preds], procedures=[p for b in batches for p in b.procedures],
            score=torch.cat([b.score for b in batches]),
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
            raise ValueError(f"prompt of row index {row_index(rows[i], i)} has {len(p)} tokens "
                             f"> max_prompt_length={recipe.max_prompt_length}")
    seeds = [prompt_seed(seed, f"{gen_key}/{i}") for i in range(len(rows))]
    sampled, texts = policy.sample(prompt_ids, seeds, recipe.rollout_n, recipe.temperature, recipe.top_p,
                                   recipe.max_response_length)
    kwargs = condition.score_kwargs(seed=seed, step=step, release_faithful=release_faithful)
    scored = score_responses(rows, sampled.prompt_index, texts, kwargs, sample_offset)
    score = torch.tensor([float(s["score"]) for s in scored])
    fmt = torch.tensor([float(s["format"]) for s in scored])
    preds = [s.get("pred") for s in scored]
    reward = condition.reward_spec
    if reward.scope != "response":  # a group / log-prob reward re-scores the finished groups

        responses = Responses(group=sampled.prompt_index.tolist(), data_source=[r["data_source"] for r in rows],
                              pred=preds, format=fmt.tolist(), logprobs=sampled.logprobs, mask=sampled.response_mask)
        responses.data_source = [responses.data_source[g] for g in responses.group]
        responses.vote = vote_values(scored, responses.data_source)
        score = torch.as_tensor(reward.rescore(responses, kwargs), dtype=torch.float32).reshape(-1)
    return Batch(prompt_ids=prompt_ids, rows=list(rows), group=sampled.prompt_index, responses=sampled.responses,
                 lengths=sampled.lengths, rollout_logprobs=sampled.logprobs, finish=sampled.finish_reasons,
                 texts=texts, preds=preds, procedures=[s.get("procedure") for s in scored], score=score,
                 acc=torch.tensor([float(s["acc"]) for s in scored]), fmt=fmt,
                 rid=torch.arange(len(texts)) + sample_offset)


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
                                            recipe.loss_agg_mode, batch_num_tokens=n_tokens, mode=recipe.policy_loss)
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


@dataclass
class StepResult:
    metrics: dict[str, float]
    history: list[dict]  # per-example training accuracy of this step (for one-shot selection)
    rollouts: list[dict]  # every response with its scores and advantage (when asked for)


def train_step(policy: Policy, optimizer: torch.optim.Optimizer, stream: Any, train_rows: list[dict],
               cond: Condition, recipe: Recipe, seed: int, step: int, release_faithful: bool,
               micro_batch_size: int | None = None, dump_rollouts: bool = False,
               record_history: bool = False) -> StepResult:
    """One training step (rollouts, rewards, dynamic sampling, advantages, PPO update).

    ``stream`` is the prompt loader (``loop.PromptStream``); the caller persists what it returns.
    """
    t0 = time.perf_counter()
    # 1-3: generation batches until enough groups are kept (dynamic sampling)
    generated: list[Batch] = []
    kept: list[Batch] = []
    n_kept = 0
    history: list[dict] = []
    # unbounded (<= 0) stops after one epoch's batches: a task whose groups never vary must not loop forever
    max_gen = recipe.max_num_gen_batches if recipe.max_num_gen_batches > 0 else max(1, stream.per_epoch)
    while True:
        epoch, idx = stream.next()
        rows = [train_rows[i] for i in idx]
        gen_no = len(generated)
        b = rollout(policy, rows, cond, recipe, seed, step, f"train/{stream.drawn - 1}", release_faithful,
                    sample_offset=gen_no * len(rows) * recipe.rollout_n)
        generated.append(b)
        if record_history:
            history += [{"step": step, "epoch": epoch, "index": row_index(r, int(i)),
                         "acc": float(b.acc[b.group == g].mean()), "n": recipe.rollout_n}
                        for g, (r, i) in enumerate(zip(rows, idx))]
        if not recipe.dynamic_sampling:
            kept, n_kept = [b], len(rows)
            break
        groups = sampling.informative({g: b.score[b.group == g].tolist() for g in range(len(b.prompt_ids))})
        kept.append(b.take_groups(groups))
        n_kept += len(groups)
        if sampling.next_action(n_kept, len(generated), recipe.train_batch_size, True, max_gen) != sampling.GENERATE:
            break
    t_gen = time.perf_counter()
    everything = Batch.cat(generated, policy.pad_token_id)
    metrics: dict[str, float] = {
        "train/acc/mean": float(everything.acc.mean()), "train/format/mean": float(everything.fmt.mean()),
        "train/kept_groups": float(min(n_kept, recipe.train_batch_size)),
        "train/num_gen_batches": float(len(generated)), "actor/lr": recipe.lr * lr_factor(step, recipe.lr_warmup_steps),
        **sampling.procedure_shares(everything.procedures),
    }

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
        estimator = get_estimator(recipe.estimator_for(cond))
        # the condition's estimator options reach it as verl's do: under the entry's algorithm config keys
        keep, advantages = sampling.drop_mask(estimator.name, token_rewards, mask, batch.group.numpy(),
                                              norm_adv_by_std_in_grpo=recipe.norm_adv_by_std_in_grpo,
                                              config=estimator.config(cond.estimator_kwargs))
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
                        "actor/pg_loss": 0.0, "actor/pg_clipfrac": 0.0, "actor/pg_clipfrac_high": 0.0,
                        "actor/pg_clipfrac_low": 0.0, "actor/pg_clipfrac_lower": 0.0, "actor/ppo_kl": 0.0,
                        "actor/abs_log_ratio": 0.0, "actor/grad_norm": 0.0, "actor/entropy": float("nan")})
    metrics.update(update)
    rollouts = rollout_records(step, everything, used_adv) if dump_rollouts else []
    metrics["timing_s/gen"] = t_gen - t0
    metrics["timing_s/step"] = time.perf_counter() - t0
    return StepResult(metrics, history, rollouts)


def rollout_records(step: int, batch: Batch, used_adv: dict[int, float]) -> list[dict]:
    """verl's rollout dump, plus whether each response was trained on and its advantage."""
    return [{"step": step, "index": row_index(batch.rows[g], g), "group": g, "rid": int(batch.rid[r]),
             "used": int(batch.rid[r]) in used_adv, "advantage": used_adv.get(int(batch.rid[r])),
             "text": batch.texts[r],
             "pred": batch.preds[r], "score": float(batch.score[r]), "acc": float(batch.acc[r]),
             "format": float(batch.fmt[r]), "length": int(batch.lengths[r]), "finish_reason": batch.finish[r],
             "mean_logprob": float(batch.rollout_logprobs[r, :int(batch.lengths[r])].mean())}
            for r, g in enumerate(batch.group.tolist())]


