"""Advantage estimators and the policy loss, defined once.

Every estimator has verl 0.9.1's estimator signature
``fn(token_level_rewards, response_mask, index, config=None, **kwargs) -> (advantages, returns)``
so the verl plugin registers these very functions with ``register_adv_est`` and the
CPU testbed's local GRPO loop calls them directly. ``policy_loss`` computes what
verl's ``compute_policy_loss_vanilla`` + ``agg_loss`` compute (asymmetric clip,
dual clip, token-mean over the whole mini-batch), or the same surrogate without
clipping (``POLICY_LOSSES``: the clipping-bias control); the verl plugin registers
both with ``register_policy_loss``.

Two definitions of negative/positive sample reinforcement are offered, under
distinct names, because they differ:

* ``masked_nsr`` / ``masked_psr`` (the paper): ordinary GRPO advantages multiplied
  by a mask. Masked responses keep their tokens in the token-mean normaliser.
* ``nsr_pm1`` / ``psr_pm1`` / ``w_reinforce`` (Zhu et al. 2025): no group
  normalisation, a fixed +-1 (or +lambda) advantage, and the unselected responses
  are *dropped* from the batch (``Estimator.drops_unselected``), so the normaliser
  counts kept tokens only.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Callable, Mapping

import numpy as np

from mirage.registry import Registry

if TYPE_CHECKING:  # torch is imported where it computes: the registries (conditions, recipes) stay light
    from torch import Tensor


def _cfg_get(config: Any, key: str, default: Any) -> Any:
    """Read ``key`` from a verl AlgoConfig / DictConfig / dict, else ``default``."""
    if config is None:
        return default
    if isinstance(config, dict):
        return config.get(key, default)
    getter = getattr(config, "get", None)
    if callable(getter):
        try:
            return getter(key, default)
        except Exception:  # dataclass configs raise on unknown keys
            pass
    return getattr(config, key, default)


def _group_ids(index: Any) -> np.ndarray:
    """Map arbitrary group labels (uids, ints) to 0..G-1 in first-seen order."""
    labels = np.asarray(index, dtype=object)
    _, first, inverse = np.unique(labels.astype(str), return_index=True, return_inverse=True)
    return inverse.reshape(-1)


def grpo_scores(scores: Tensor, index: Any, epsilon: float = 1e-6, norm_by_std: bool = True) -> Tensor:
    """Group-normalised scores, exactly as verl's ``compute_grpo_outcome_advantage``.

    Per group: (score - mean) / (std + epsilon) with the unbiased std; a group of one
    gets mean 0 and std 1.
    """
    import torch

    scores = scores.detach().to(torch.float32)
    gid = torch.as_tensor(_group_ids(index), dtype=torch.long)
    n_groups = int(gid.max().item()) + 1 if gid.numel() else 0
    count = torch.zeros(n_groups).index_add_(0, gid, torch.ones_like(scores))
    total = torch.zeros(n_groups).index_add_(0, gid, scores)
    mean = total / count
    sq = torch.zeros(n_groups).index_add_(0, gid, (scores - mean[gid]) ** 2)
    std = torch.sqrt(sq / (count - 1).clamp(min=1))
    single = count == 1
    mean = torch.where(single, torch.zeros_like(mean), mean)
    std = torch.where(single, torch.ones_like(std), std)
    if norm_by_std:
        return (scores - mean[gid]) / (std[gid] + epsilon)
    return scores - mean[gid]


def _outcome(token_level_rewards: Tensor) -> Tensor:
    return token_level_rewards.sum(dim=-1)


def _broadcast(per_response: Tensor, response_mask: Tensor) -> tuple[Tensor, Tensor]:
    import torch

    adv = per_response.unsqueeze(-1).to(response_mask.dtype if response_mask.is_floating_point() else torch.float32)
    adv = adv * response_mask
    return adv, adv


def compute_grpo(token_level_rewards: Tensor, response_mask: Tensor, index: Any, epsilon: float = 1e-6,
                 norm_adv_by_std_in_grpo: bool = True, config: Any = None, **_: Any) -> tuple[Tensor, Tensor]:
    """Standard GRPO outcome advantage (same numbers as verl's built-in ``grpo``)."""
    norm = _cfg_get(config, "norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo)
    return _broadcast(grpo_scores(_outcome(token_level_rewards), index, epsilon, norm), response_mask)


def compute_masked_nsr(token_level_rewards: Tensor, response_mask: Tensor, index: Any, epsilon: float = 1e-6,
                       norm_adv_by_std_in_grpo: bool = True, config: Any = None, **_: Any) -> tuple[Tensor, Tensor]:
    """The paper's NSR: GRPO advantages kept only on responses with reward < 1."""
    scores = _outcome(token_level_rewards)
    norm = _cfg_get(config, "norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo)
    adv = grpo_scores(scores, index, epsilon, norm) * (scores < 1).float()
    return _broadcast(adv, response_mask)


def compute_masked_psr(token_level_rewards: Tensor, response_mask: Tensor, index: Any, epsilon: float = 1e-6,
                       norm_adv_by_std_in_grpo: bool = True, config: Any = None, **_: Any) -> tuple[Tensor, Tensor]:
    """The paper's PSR: GRPO advantages kept only on responses with reward > 0."""
    scores = _outcome(token_level_rewards)
    norm = _cfg_get(config, "norm_adv_by_std_in_grpo", norm_adv_by_std_in_grpo)
    adv = grpo_scores(scores, index, epsilon, norm) * (scores > 0).float()
    return _broadcast(adv, response_mask)


def compute_nsr_pm1(token_level_rewards: Tensor, response_mask: Tensor, index: Any = None, config: Any = None,
                    **_: Any) -> tuple[Tensor, Tensor]:
    """Zhu et al. NSR: advantage -1 on wrong responses (reward <= 0), 0 elsewhere (dropped)."""
    scores = _outcome(token_level_rewards)
    return _broadcast(-(scores <= 0).float(), response_mask)


def compute_psr_pm1(token_level_rewards: Tensor, response_mask: Tensor, index: Any = None, config: Any = None,
                    **_: Any) -> tuple[Tensor, Tensor]:
    """Zhu et al. PSR: advantage +1 on correct responses (reward > 0), 0 elsewhere (dropped)."""
    scores = _outcome(token_level_rewards)
    return _broadcast((scores > 0).float(), response_mask)


W_REINFORCE_LAMBDA = "w_reinforce_lambda"  # its lambda's key in verl's algorithm config (the entry's config_keys)


def compute_w_reinforce(token_level_rewards: Tensor, response_mask: Tensor, index: Any = None, config: Any = None,
                        lam: float | None = None, **_: Any) -> tuple[Tensor, Tensor]:
    """Zhu et al. W-REINFORCE: +lambda on correct, -1 on wrong (lambda defaults to 0.1)."""
    import torch

    if lam is None:
        lam = float(_cfg_get(config, W_REINFORCE_LAMBDA, 0.1))
    scores = _outcome(token_level_rewards)
    adv = torch.where(scores > 0, torch.full_like(scores, float(lam)), torch.full_like(scores, -1.0))
    return _broadcast(adv, response_mask)


def compute_rloo(token_level_rewards: Tensor, response_mask: Tensor, index: Any, config: Any = None,
                 **_: Any) -> tuple[Tensor, Tensor]:
    """RLOO (Ahmadian et al. 2024), as verl's ``rloo``: each score minus the mean of the other
    responses to its prompt, no std normalisation (a group of one keeps its score)."""
    import torch

    scores = _outcome(token_level_rewards).detach().to(torch.float32)
    gid = torch.as_tensor(_group_ids(index), dtype=torch.long)
    n_groups = int(gid.max().item()) + 1 if gid.numel() else 0
    count = torch.zeros(n_groups).index_add_(0, gid, torch.ones_like(scores))
    total = torch.zeros(n_groups).index_add_(0, gid, scores)
    n = count[gid]
    loo = torch.where(n > 1, (scores * n - total[gid]) / (n - 1).clamp(min=1), scores)
    return _broadcast(loo, response_mask)


@dataclass(frozen=True)
class Estimator:
    name: str
    fn: Callable[..., tuple[Tensor, Tensor]]
    # True: responses whose advantage is exactly 0 are removed from the batch
    # (Zhu et al.), so they do not count in the token-mean normaliser.
    drops_unselected: bool = False
    # The name verl knows it by. Built-in grpo stays verl's own; ours are prefixed
    # so they can never collide with a future verl estimator.
    verl_name: str = ""
    # Its options: a condition's estimator_kwargs key -> the key of verl's algorithm config ``fn`` reads it
    # from. Both engines pass options that way: verl's command sets ``+algorithm.<key>``, the local engine
    # calls ``fn(config=estimator.config(kwargs))``; nothing outside this file names a key.
    config_keys: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self):
        object.__setattr__(self, "config_keys", MappingProxyType(dict(self.config_keys)))

    def __call__(self, *args: Any, **kwargs: Any) -> tuple[Tensor, Tensor]:
        return self.fn(*args, **kwargs)

    def config(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        """{algorithm config key: value} of a condition's ``estimator_kwargs``; a KeyError naming an option
        this estimator does not have."""
        unknown = sorted(set(kwargs) - set(self.config_keys))
        if unknown:
            raise KeyError(f"estimator {self.name!r} has no option {unknown[0]!r}; its options: "
                           f"{', '.join(self.config_keys) or '(none)'}")
        return {self.config_keys[k]: v for k, v in kwargs.items()}


ESTIMATORS: Registry[Estimator] = Registry("advantage estimator")


def register_estimator(estimator: Estimator, replace: bool = False) -> Estimator:
    """Add an estimator; the verl plugin registers it with verl under ``verl_name`` (default ``mirage_<name>``)."""
    if not estimator.verl_name:
        estimator = dataclasses.replace(estimator, verl_name=f"mirage_{estimator.name}")
    return ESTIMATORS.register(estimator, replace=replace)


for _est in [
    Estimator("grpo", compute_grpo, verl_name="grpo"),
    Estimator("masked_nsr", compute_masked_nsr),
    Estimator("masked_psr", compute_masked_psr),
    Estimator("nsr_pm1", compute_nsr_pm1, drops_unselected=True),
    Estimator("psr_pm1", compute_psr_pm1, drops_unselected=True),
    Estimator("w_reinforce", compute_w_reinforce, config_keys={"lam": W_REINFORCE_LAMBDA}),
    Estimator("rloo", compute_rloo, verl_name="rloo"),
]:
    register_estimator(_est)


def get_estimator(name: str) -> Estimator:
    return ESTIMATORS[name]


def kept_responses(estimator: str, advantages: Tensor) -> Tensor:
    """Boolean per response: True where the response stays in the batch.

    ``advantages`` is (batch, response_length) or (batch,). Only estimators with
    ``drops_unselected`` drop anything: a masked (paper) NSR/PSR response keeps its
    tokens in the normaliser even though its advantage is zero.
    """
    import torch

    if not get_estimator(estimator).drops_unselected:
        return torch.ones(advantages.shape[0], dtype=torch.bool)
    per_response = advantages if advantages.dim() == 1 else advantages.abs().sum(dim=-1)
    return per_response != 0


# --- policy losses ------------------------------------------------------------------------
def loss_terms(old_log_prob: Tensor, log_prob: Tensor, advantages: Tensor, response_mask: Tensor,
               clip_ratio_low: float = 0.2, clip_ratio_high: float = 0.28, clip_ratio_c: float = 10.0,
               clip: bool = True) -> tuple[Tensor, dict[str, float]]:
    """Per-token policy-gradient losses and their clipping metrics.

    ``clip=True``: verl's vanilla PPO loss (asymmetric ratio clip, dual clip for negative
    advantages). ``clip=False``: the same surrogate, -A * ratio, with no clipping at all
    (the no-clip control of the clipping-bias mechanism).

    Metrics, each a share of the valid tokens: ``actor/pg_clipfrac`` (the ratio clip acted,
    either side: verl's), its two sides ``actor/pg_clipfrac_high`` (advantage > 0 and ratio
    above 1 + clip_ratio_high) and ``actor/pg_clipfrac_low`` (advantage < 0 and ratio below
    1 - clip_ratio_low), so high + low = pg_clipfrac; ``actor/pg_clipfrac_lower`` (the dual
    clip acted: verl's); plus ``actor/ppo_kl`` (mean old - new log-prob, verl's) and
    ``actor/abs_log_ratio`` (mean |new - old log-prob|). A ratio exactly at a bound is not clipped.
    """
    import torch

    if clip_ratio_c <= 1.0:
        raise ValueError(f"clip_ratio_c must be > 1 (dual clip), got {clip_ratio_c}")
    mask = response_mask.to(log_prob.dtype)
    neg_kl = torch.clamp(log_prob - old_log_prob, min=-20.0, max=20.0)
    ratio = torch.exp(neg_kl)
    losses1 = -advantages * ratio
    with torch.no_grad():
        n_valid = mask.sum().clamp(min=1)
        share = lambda x: float((x.float() * mask).sum() / n_valid)  # noqa: E731
    if clip:
        losses2 = -advantages * torch.clamp(ratio, 1 - clip_ratio_low, 1 + clip_ratio_high)
        clipped1 = torch.maximum(losses1, losses2)
        losses3 = -advantages * clip_ratio_c
        clipped2 = torch.minimum(losses3, clipped1)
        losses = torch.where(advantages < 0, clipped2, clipped1)
        with torch.no_grad():
            active = losses2 > losses1
            metrics = {"actor/pg_clipfrac": share(active),
                       "actor/pg_clipfrac_high": share(active & (advantages > 0)),
                       "actor/pg_clipfrac_low": share(active & (advantages < 0)),
                       "actor/pg_clipfrac_lower": share((clipped1 > losses3) & (advantages < 0))}
    else:
        losses = losses1
        metrics = {"actor/pg_clipfrac": 0.0, "actor/pg_clipfrac_high": 0.0, "actor/pg_clipfrac_low": 0.0,
                   "actor/pg_clipfrac_lower": 0.0}
    with torch.no_grad():
        metrics["actor/ppo_kl"] = float((-neg_kl * mask).sum() / n_valid)
        metrics["actor/abs_log_ratio"] = float((neg_kl.abs() * mask).sum() / n_valid)
    return losses, metrics


def aggregate(losses: Tensor, response_mask: Tensor, loss_agg_mode: str = "token-mean",
              batch_num_tokens: float | Tensor | None = None) -> Tensor:
    """verl's ``agg_loss`` on one data-parallel rank. ``batch_num_tokens``: the token-mean denominator
    (verl normalises by the valid tokens of the whole mini-batch even when it is split into micro-batches)."""
    mask = response_mask.to(losses.dtype)
    if loss_agg_mode == "token-mean":
        denom = mask.sum() if batch_num_tokens is None else batch_num_tokens
        return (losses * mask).sum() / denom
    if loss_agg_mode == "seq-mean-token-mean":
        per_seq_tokens = mask.sum(-1)
        seq = (losses * mask).sum(-1) / (per_seq_tokens + 1e-8)
        seq_mask = (per_seq_tokens > 0).to(seq.dtype)
        return (seq * seq_mask).sum() / seq_mask.sum()
    if loss_agg_mode == "seq-mean-token-sum":
        seq = (losses * mask).sum(-1)
        seq_mask = (mask.sum(-1) > 0).to(seq.dtype)
        return (seq * seq_mask).sum() / seq_mask.sum()
    raise ValueError(f"unsupported loss_agg_mode {loss_agg_mode!r}")


@dataclass(frozen=True)
class PolicyLoss:
    name: str
    clip: bool  # ratio clipping (and dual clip) on
    verl_name: str  # the name mirage registers it under with verl (register_policy_loss)
    summary: str = ""


POLICY_LOSSES: Registry[PolicyLoss] = Registry("policy loss")
for _loss in [PolicyLoss("vanilla", True, "mirage_vanilla",
                         "PPO clipped surrogate (asymmetric + dual clip), as verl's vanilla, plus clip-side metrics"),
              PolicyLoss("no_clip", False, "mirage_no_clip",
                         "the same surrogate -A * ratio without any clipping (the clipping-bias control)")]:
    POLICY_LOSSES.register(_loss)


def policy_loss(
    old_log_prob: Tensor,
    log_prob: Tensor,
    advantages: Tensor,
    response_mask: Tensor,
    clip_ratio_low: float = 0.2,
    clip_ratio_high: float = 0.28,
    clip_ratio_c: float = 10.0,
    loss_agg_mode: str = "token-mean",
    batch_num_tokens: float | Tensor | None = None,
    mode: str = "vanilla",
) -> tuple[Tensor, dict[str, float]]:
    """The policy loss ``mode`` (a ``POLICY_LOSSES`` name), aggregated as verl's ``agg_loss``.

    ``batch_num_tokens``: the token-mean denominator. verl normalises by the valid
    tokens of the whole mini-batch even when it is split into micro-batches; pass
    that count here when calling on a micro-batch (default: this batch's tokens).
    """
    losses, metrics = loss_terms(old_log_prob, log_prob, advantages, response_mask, clip_ratio_low,
                                 clip_ratio_high, clip_ratio_c, clip=POLICY_LOSSES[mode].clip)
    return aggregate(losses, response_mask, loss_agg_mode, batch_num_tokens), metrics
