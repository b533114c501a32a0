"""The training recipe as data: one ``Recipe`` dataclass, the paper's and the testbed's.

Both engines read a ``Recipe``; ``with_overrides`` is the one parser of ``KEY=VALUE``
overrides (``mirage train --set``, a preset's ``overrides``), and an unknown key or a
bad value is an error naming the key.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping

from mirage.objectives import ESTIMATORS, POLICY_LOSSES
from mirage.ranges import TOP_P, Range, check_fields


@dataclass(frozen=True)
class Recipe:
    """The training recipe as data. Defaults are the paper's (identical in all 36 released scripts)."""

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
    policy_loss: str = "vanilla"  # a mirage.objectives.POLICY_LOSSES name; "no_clip": the clipping-bias control
    estimator_override: str = ""  # "" = the condition's estimator; e.g. "rloo" for the RLOO control
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
    max_actor_ckpt_to_keep: int = 0  # checkpoints kept, the newest (verl's trainer.max_actor_ckpt_to_keep); 0: all
    n_gpus_per_node: int = 8
    nnodes: int = 1
    tensor_parallel_size: int = 4
    # vLLM's context (verl: rollout.max_model_len). 0: max_prompt_length + max_response_length, which the model's
    # max_position_embeddings must hold (`mirage doctor` checks). Set below that only as an explicit choice for a
    # short-context model: responses then end at max_model_len - prompt tokens (recorded in the manifest).
    max_model_len: int = 0

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

    def check(self) -> "Recipe":
        """Values a run cannot use are an error naming the key, before any work starts: every number
        finite and inside its range (``RANGES``), every flag a boolean, then the keys that depend on each other."""
        for f in dataclasses.fields(self):
            kind, value = _FIELD_TYPES[f.type], getattr(self, f.name)
            if kind in (bool, str) and not isinstance(value, kind):
                raise ValueError(f"recipe key {f.name!r}: expected {kind.__name__}, got {value!r}")
        check_fields(self, RANGES, prefix="recipe key ", quote=True)
        if self.ppo_mini_batch_size > self.train_batch_size:
            raise ValueError(f"recipe key 'ppo_mini_batch_size' ({self.ppo_mini_batch_size}) must be <= "
                             f"train_batch_size ({self.train_batch_size})")
        if self.max_model_len and self.max_model_len <= self.max_prompt_length:
            raise ValueError(f"recipe key 'max_model_len' ({self.max_model_len}) must exceed max_prompt_length "
                             f"({self.max_prompt_length}), or be 0 (prompt + response)")
        if self.loss_agg_mode not in LOSS_AGG_MODES:
            raise ValueError(f"recipe key 'loss_agg_mode': one of {LOSS_AGG_MODES}, got {self.loss_agg_mode!r}")

        if self.policy_loss not in POLICY_LOSSES:
            raise ValueError(f"recipe key 'policy_loss': one of {', '.join(POLICY_LOSSES)}, got {self.policy_loss!r}")
        if self.estimator_override and self.estimator_override not in ESTIMATORS:
            raise ValueError(f"recipe key 'estimator_override': empty or one of {', '.join(ESTIMATORS)}, "
                             f"got {self.estimator_override!r}")
        problems = self.gpu_layout_problems()
        if problems:
            raise ValueError(problems[0])
        return self

    def gpu_layout_problems(self) -> list[str]:
        """What verl 0.9.1 assumes of the GPU layout and would otherwise find out on the cluster (or never):
        rollout replicas = GPUs // tensor_parallel_size (TP 4 on 2 GPUs starts 0 vLLM servers), the batch and
        each mini-batch of responses split evenly over the GPUs (FSDP data parallel). Empty on the CPU
        testbed (n_gpus_per_node 0)."""
        gpus = self.n_gpus_per_node * max(self.nnodes, 1)
        if not self.n_gpus_per_node:
            return []
        out, tp = [], self.tensor_parallel_size
        if tp < 1 or self.n_gpus_per_node % tp:
            fits = [d for d in range(1, self.n_gpus_per_node + 1) if self.n_gpus_per_node % d == 0]
            out.append(f"recipe key 'tensor_parallel_size' ({tp}) must divide n_gpus_per_node "
                       f"({self.n_gpus_per_node}), or verl starts {self.n_gpus_per_node // max(tp, 1)} vLLM rollout "
                       f"server(s) per node: set tensor_parallel_size to one of {fits}")
        responses = self.train_batch_size * self.rollout_n
        if responses % gpus:
            out.append(f"recipe keys 'train_batch_size' x 'rollout_n' ({self.train_batch_size} x {self.rollout_n} = "
                       f"{responses} responses) must be a multiple of the {gpus} GPUs (n_gpus_per_node x nnodes)")
        mini = self.ppo_mini_batch_size * self.rollout_n
        if mini % gpus:
            out.append(f"recipe keys 'ppo_mini_batch_size' x 'rollout_n' ({self.ppo_mini_batch_size} x "
                       f"{self.rollout_n} = {mini} responses per update) must be a multiple of the {gpus} GPUs "
                       f"(n_gpus_per_node x nnodes): verl splits each mini-batch over the GPUs")
        return out

    @property
    def updates_per_rollout(self) -> int:
        """Optimizer steps per generation batch (ratio clipping can only act from the second on)."""
        return self.ppo_epochs * -(-self.train_batch_size // self.ppo_mini_batch_size)

    def estimator_for(self, condition: Any) -> str:
        """The advantage estimator a run of ``condition`` uses under this recipe."""
        return self.estimator_override or condition.estimator

    @property
    def context_length(self) -> int:
        """vLLM's max_model_len for this recipe: the explicit cap, else prompt + response."""
        return self.max_model_len or self.max_prompt_length + self.max_response_length

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        for key in ("max_model_len", "max_actor_ckpt_to_keep"):  # added later: left out at their default so
            if not d[key]:  # recorded runs keep their recipe
                del d[key]
        return d


LOSS_AGG_MODES = ("token-mean", "seq-mean-token-mean", "seq-mean-token-sum")

# The range of every numeric recipe key, stated once (docs/engine.md lists them; Recipe.check applies them).
# Bounds are what a run can use, not what is sensible: a value outside is an error, not a clamp.
_N = 10**7  # a count no run reaches (steps, prompts, tokens)
RANGES = {
    "train_batch_size": Range(1, _N, integer=True),
    "rollout_n": Range(1, 2**16, integer=True),
    "ppo_mini_batch_size": Range(1, _N, integer=True),  # and <= train_batch_size
    "ppo_epochs": Range(1, 1000, integer=True),
    "lr": Range(0, 1, low_open=True),
    "lr_warmup_steps": Range(0, _N, integer=True),
    "weight_decay": Range(0, 10),
    "grad_clip": Range(0, 1e6, low_open=True),
    "clip_ratio_low": Range(0, 1, high_open=True),  # the ratio is clipped at 1 - it
    "clip_ratio_high": Range(0, 100),
    "clip_ratio_c": Range(1, 1e6, low_open=True),  # the dual clip
    "entropy_coeff": Range(0, 10),
    "max_num_gen_batches": Range(0, 1000, integer=True),
    "max_prompt_length": Range(1, 2**22, integer=True),
    "max_response_length": Range(1, 2**22, integer=True),
    "temperature": Range(0, 10, low_open=True),
    "top_p": TOP_P,
    "total_steps": Range(1, _N, integer=True),
    "val_freq": Range(0, _N, integer=True),
    "val_n": Range(1, 2**16, integer=True),
    "val_temperature": Range(0, 10, low_open=True),
    "val_top_p": TOP_P,
    "save_freq": Range(0, _N, integer=True),
    "max_actor_ckpt_to_keep": Range(0, _N, integer=True),  # 0: keep every checkpoint
    "n_gpus_per_node": Range(0, 1024, integer=True),
    "nnodes": Range(0, 10**5, integer=True),
    "tensor_parallel_size": Range(1, 1024, integer=True),
    "max_model_len": Range(0, 2**23, integer=True),  # 0: prompt + response; else > max_prompt_length
}
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
