"""The study's conditions and training recipes, defined once.

Every backend (the CPU testbed's local GRPO loop and verl on GPUs) reads a
``Condition`` from ``CONDITIONS`` and a ``Recipe``; nothing else in mirage
hard-codes a condition. A condition names three things:

* ``reward``    how one response is scored (see ``REWARDS``),
* ``estimator`` how scores become advantages (a key of ``mirage.objectives.ESTIMATORS``),
* ``data``      which training rows are used (full set, or one example duplicated).

Paper index (like TRL's): STUDY.md section 3 maps onto the entries below one to one.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

# Reward variants. "response" rewards are a pure function of one response and go
# through ``mirage.rewards.compute_score(variant=...)``; the other two need a whole
# group of samples (majority vote) or the response's own log-probs (entropy min).
RESPONSE_REWARDS = ("ground_truth", "random", "incorrect", "format")
GROUP_REWARDS = ("majority_vote",)
LOGPROB_REWARDS = ("entropy_min",)
REWARDS = RESPONSE_REWARDS + GROUP_REWARDS + LOGPROB_REWARDS

DATA_REGIMES = ("full", "one_shot_selected", "one_shot_random")


@dataclass(frozen=True)
class Condition:
    """One experimental condition of the study."""

    name: str
    rq: str  # "RQ1" | "RQ2" | "RQ3"
    reward: str
    estimator: str = "grpo"
    data: str = "full"
    reward_kwargs: Mapping[str, Any] = field(default_factory=dict)
    estimator_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # The condition every "surprising technique" is compared with.
    baseline: str = "ground_truth"
    summary: str = ""

    def __post_init__(self):
        if self.reward not in REWARDS:
            raise ValueError(f"condition {self.name!r}: unknown reward {self.reward!r}; known: {REWARDS}")
        if self.data not in DATA_REGIMES:
            raise ValueError(f"condition {self.name!r}: unknown data regime {self.data!r}; known: {DATA_REGIMES}")
        # Freeze the mappings so a backend cannot mutate the registry by accident.
        object.__setattr__(self, "reward_kwargs", MappingProxyType(dict(self.reward_kwargs)))
        object.__setattr__(self, "estimator_kwargs", MappingProxyType(dict(self.estimator_kwargs)))

    @property
    def reward_scope(self) -> str:
        """'response', 'group' or 'logprob': what the reward needs to be computed."""
        if self.reward in RESPONSE_REWARDS:
            return "response"
        return "group" if self.reward in GROUP_REWARDS else "logprob"

    @property
    def is_baseline(self) -> bool:
        return self.name == self.baseline

    def score_kwargs(self, **overrides: Any) -> dict[str, Any]:
        """kwargs for ``mirage.rewards.compute_score`` (verl's ``reward_kwargs``).

        Group and log-prob rewards still score each response with the ground-truth
        variant: that gives ``acc`` / ``pred`` for logging and for the pseudo-label;
        the training score is then replaced by the group / log-prob reward.
        """
        variant = self.reward if self.reward_scope == "response" else "ground_truth"
        return {"variant": variant, **self.reward_kwargs, **overrides}

    def to_dict(self) -> dict[str, Any]:
        # not dataclasses.asdict: it deep-copies the read-only mappings, which cannot be pickled
        d = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        d["reward_kwargs"] = dict(self.reward_kwargs)
        d["estimator_kwargs"] = dict(self.estimator_kwargs)
        d["reward_scope"] = self.reward_scope
        return d


def _c(*args, **kwargs) -> Condition:
    return Condition(*args, **kwargs)


# --- the registry: one short entry per condition --------------------------------
CONDITIONS: dict[str, Condition] = {
    c.name: c
    for c in [
        # RQ1: how critical is the reward signal?
        _c("ground_truth", "RQ1", "ground_truth",
           summary="format ok AND answer correct (standard RLVR)"),
        _c("random", "RQ1", "random", reward_kwargs={"p": 0.5},
           summary="format ok AND an independent coin with p=0.5 per response"),
        _c("incorrect", "RQ1", "incorrect",
           summary="format ok AND answer NOT correct"),
        _c("format", "RQ1", "format",
           summary="format ok, answer ignored"),
        _c("entropy_min", "RQ1", "entropy_min",
           summary="mean token log-prob of the response, group-normalised (entropy minimisation)"),
        _c("majority_vote", "RQ1", "majority_vote",
           summary="format ok AND answer equals the group's majority answer (TTRL)"),
        # RQ2: is one example enough?
        _c("one_shot", "RQ2", "ground_truth", data="one_shot_selected",
           summary="ground truth on the top historical-variance example, duplicated to the batch"),
        _c("one_shot_random", "RQ2", "ground_truth", data="one_shot_random",
           summary="ground truth on one random example (seeded), duplicated to the batch"),
        # RQ3: does RL work with only negative (or only positive) samples?
        _c("nsr", "RQ3", "ground_truth", estimator="masked_nsr",
           summary="paper: GRPO advantages kept only where reward < 1 (masked, tokens still in normaliser)"),
        _c("psr", "RQ3", "ground_truth", estimator="masked_psr",
           summary="paper: GRPO advantages kept only where reward > 0 (masked)"),
        _c("nsr_pm1", "RQ3", "ground_truth", estimator="nsr_pm1",
           summary="Zhu et al.: advantage -1 on wrong responses, correct ones dropped from the batch"),
        _c("psr_pm1", "RQ3", "ground_truth", estimator="psr_pm1",
           summary="Zhu et al.: advantage +1 on correct responses, wrong ones dropped from the batch"),
        _c("w_reinforce", "RQ3", "ground_truth", estimator="w_reinforce", estimator_kwargs={"lam": 0.1},
           summary="Zhu et al.: +lambda on correct (lambda=0.1), -1 on wrong, no group normalisation"),
    ]
}

# The conditions of the paper itself (the rest are extensions offered for comparison).
PAPER_CONDITIONS = ("ground_truth", "random", "incorrect", "format", "entropy_min",
                    "majority_vote", "one_shot", "one_shot_random", "nsr", "psr")


def get_condition(name: str) -> Condition:
    try:
        return CONDITIONS[name]
    except KeyError:
        raise KeyError(f"unknown condition {name!r}; known: {', '.join(CONDITIONS)}") from None


# --- training recipes ------------------------------------------------------------
@dataclass(frozen=True)
class Recipe:
    """The training recipe as data. Defaults are the paper's (STUDY.md section 2)."""

    train_batch_size: int = 128  # prompts per step
    rollout_n: int = 16  # responses per prompt
    ppo_mini_batch_size: int = 64  # prompts per optimizer step (2 updates per step)
    ppo_epochs: int = 1
    lr: float = 1e-6
    lr_warmup_steps: int = 10
    weight_decay: float = 0.1
    grad_clip: float = 1.0
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.28
    clip_ratio_c: float = 10.0  # dual clip
    loss_agg_mode: str = "token-mean"
    entropy_coeff: float = 0.0
    use_kl_loss: bool = False  # no KL anywhere, so no reference model
    use_kl_in_reward: bool = False
    norm_adv_by_std_in_grpo: bool = True
    dynamic_sampling: bool = True  # drop groups whose rewards are all equal
    max_num_gen_batches: int = 2  # then fall back to what was collected
    max_prompt_length: int = 2048
    max_response_length: int = 8192
    temperature: float = 1.0
    top_p: float = 1.0
    total_steps: int = 300
    val_freq: int = 20
    val_n: int = 1
    val_temperature: float = 1.0
    val_top_p: float = 0.7
    save_freq: int = 50
    n_gpus_per_node: int = 8
    nnodes: int = 1
    tensor_parallel_size: int = 4

    def replace(self, **changes: Any) -> "Recipe":
        unknown = set(changes) - {f.name for f in dataclasses.fields(self)}
        if unknown:
            raise KeyError(f"unknown recipe keys: {sorted(unknown)}")
        return dataclasses.replace(self, **changes)

    def with_overrides(self, overrides: Mapping[str, Any] | None) -> "Recipe":
        """A copy with ``overrides`` applied; strings (KEY=VALUE from a command line) are
        parsed as the field's type, and a bad key or value is an error that names it."""
        kinds = {f.name: _FIELD_TYPES[f.type] for f in dataclasses.fields(self)}
        changes = dict(overrides or {})
        for key, value in changes.items():
            if key not in kinds:
                raise KeyError(f"unknown recipe key {key!r}; known: {', '.join(sorted(kinds))}")
            if isinstance(value, str) and kinds[key] is not str:
                changes[key] = _parse_field(key, value, kinds[key])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


_FIELD_TYPES = {"int": int, "float": float, "str": str, "bool": bool}  # Recipe's annotations (postponed: strings)


def _parse_field(key: str, text: str, kind: type) -> Any:
    if kind is bool:
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off"):
            return False
        raise ValueError(f"recipe key {key!r}: expected a boolean, got {text!r}")
    try:
        return kind(text)
    except ValueError:
        raise ValueError(f"recipe key {key!r}: expected {kind.__name__}, got {text!r}") from None


PAPER_RECIPE = Recipe()

# The paper's recipe scaled to a 2-core CPU and a ~1M-parameter model: same
# semantics (group sampling, clip 0.2/0.28 + dual clip, token-mean, no KL,
# dynamic sampling, two PPO mini-batches per step), smaller numbers. Sized for ~0.5-1 s
# per step on one CPU thread (docs/engine.md): 8 prompts x 8 samples, 40 steps.
TESTBED_RECIPE = Recipe(
    train_batch_size=8,
    rollout_n=8,
    ppo_mini_batch_size=4,
    lr=2e-5,
    lr_warmup_steps=0,
    weight_decay=0.1,
    max_prompt_length=64,
    max_response_length=48,
    total_steps=40,
    val_freq=10,
    val_n=1,
    save_freq=10,
    n_gpus_per_node=0,
    tensor_parallel_size=1,
)

RECIPES = {"paper": PAPER_RECIPE, "testbed": TESTBED_RECIPE}
