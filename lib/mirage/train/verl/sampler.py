"""The training-batch sampler mirage plugs into verl 0.9.1's V1 trainer.

verl's reward managers see one response at a time, and its advantage estimators
see neither the responses' log-probs nor the batch composition. The one place
that sees whole finished groups before advantages are computed is the V1
trainer's replay buffer, which verl lets a user replace
(``trainer.v1.sampler.custom_sampler``). ``MirageReplayBuffer`` does four things
there, for the training partition only (validation is verl's own, unchanged):

1. Group and log-prob rewards. Every response was already scored by
   ``mirage.rewards.compute_score`` (the reward's per-response variant, which also
   returns ``pred`` and ``format``). A reward whose scope is not ``response`` then
   re-scores the finished groups through the registry (``Reward.rescore``, fed the
   fields it ``needs``: answers and formats for majority vote, the rollout log-probs,
   ``rollout_log_probs``, on by default in 0.9.1, for entropy minimisation), exactly
   as the local engine does. The new score is written back to the TransferQueue
   (``rm_scores``), so dynamic sampling, advantages and verl's logged
   ``critic/score`` all see it.
2. Dynamic sampling as in the paper's DAPO recipe (``mirage.train.sampling``, shared
   with the local engine): groups whose scores are all equal are dropped; while fewer
   than ``train_batch_size`` groups carry signal, another whole generation batch is
   drawn, at most ``max_num_gen_batches`` in all (0 = unbounded). verl's own V1 replay
   buffer ignores that cap (it refills forever); this one enforces it and then falls
   back to the groups it has (see docs/cluster.md for how the fallback differs from
   the release's).
3. Dropping for the +-1 estimators (``Estimator.drops_unselected``): responses
   with zero advantage leave the batch, so the token-mean normaliser counts kept
   tokens only (a custom loss cannot change it).
4. Logging what verl's V1 metrics lack: ``train/acc/mean``, ``train/format/mean``
   (ground-truth accuracy and format rate of the responses, whatever the reward),
   ``train/kept_groups``, ``train/num_gen_batches``, ``train/fallback``,
   ``train/dropped_responses``.

The score and selection logic are plain functions on ``verl.DataProto``
(``training_scores``, ``uniform_groups``, ``kept_mask``), tested on hand-built batches.

Selected with ``trainer.v1.sampler.custom_sampler.path=pkg://mirage.train.verl.sampler``,
``...name=MirageReplayBuffer`` and ``+trainer.v1.sampler.sampler_kwargs.*`` (the
fields of ``SamplerOptions``; verl does not pass its filter settings to a custom sampler).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field, fields
from typing import Any, Mapping

import numpy as np
import torch
import transfer_queue as tq
from tensordict import TensorDict
from transfer_queue import KVBatchMeta
from verl import DataProto
from verl.trainer.ppo import core_algos
from verl.trainer.ppo.v1.replay_buffer import ReplayBuffer

from mirage.objectives import get_estimator
from mirage.rewards import REWARDS, Responses, get_reward
from mirage.rewards.group import vote_values
from mirage.train import sampling

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class SamplerOptions:
    """What the sampler needs to know about the run (``trainer.v1.sampler.sampler_kwargs``)."""

    reward: str = "ground_truth"  # a mirage.rewards reward name
    estimator: str = "grpo"  # a mirage.objectives estimator name
    dynamic_sampling: bool = True
    max_num_gen_batches: int = 2  # generation batches per step, first one included; <= 0: unbounded
    poll_interval: float = 2.0  # seconds between looks at the TransferQueue
    release_faithful: bool = False
    # the condition's reward_kwargs (checker options such as math_checker), for a group re-score
    score_kwargs: Mapping[str, Any] = field(default_factory=dict)
    # a dropping estimator's options under its config keys (``Estimator.config``), for the drop decision
    estimator_config: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self):
        if self.reward not in REWARDS:
            raise ValueError(f"sampler_kwargs.reward: unknown reward {self.reward!r}; known: {', '.join(REWARDS)}")
        get_estimator(self.estimator)  # raises naming the known ones
        object.__setattr__(self, "score_kwargs", dict(self.score_kwargs or {}))
        object.__setattr__(self, "estimator_config", dict(self.estimator_config or {}))

    @property
    def rescores(self) -> bool:
        return get_reward(self.reward).scope != "response"

    @classmethod
    def from_kwargs(cls, kwargs: Mapping[str, Any] | None) -> "SamplerOptions":
        kwargs = dict(kwargs or {})
        unknown = set(kwargs) - {f.name for f in fields(cls)}
        if unknown:
            raise KeyError(f"trainer.v1.sampler.sampler_kwargs: unknown keys {sorted(unknown)}")
        return cls(**kwargs)


# --- the logic, on DataProto ------------------------------------------------------
def _groups(uids: np.ndarray) -> dict[str, np.ndarray]:
    """uid -> row indices, in first-seen order."""
    out: dict[str, list[int]] = {}
    for i, uid in enumerate(uids):
        out.setdefault(str(uid), []).append(i)
    return {uid: np.asarray(idx) for uid, idx in out.items()}


def training_scores(data: DataProto, reward: str, release_faithful: bool = False,
                    score_kwargs: Mapping[str, Any] | None = None) -> torch.Tensor:
    """The training score of each response under a group or log-prob reward (``Reward.rescore``).

    ``data`` holds responses of one or more groups: ``non_tensor_batch`` has ``uid``
    (the group) and, as the reward ``needs``, ``pred``, ``format`` and ``data_source``;
    ``batch`` has ``rollout_log_probs`` and ``response_mask``.
    """
    spec = get_reward(reward)
    if spec.scope == "response":
        raise ValueError(f"reward {reward!r} is scored per response by compute_score, not by the sampler")
    nt, tensors = data.non_tensor_batch, data.batch
    fields_of = {"group": ("uid", nt), "data_source": ("data_source", nt), "pred": ("pred", nt),
                 "format": ("format", nt), "logprobs": ("rollout_log_probs", tensors),
                 "mask": ("response_mask", tensors)}
    fields_of["vote"] = ("vote", nt)
    given: dict[str, Any] = {}
    for need in ("group", *spec.needs):
        key, where = fields_of[need]
        if need == "vote" and key not in where.keys():  # only code rows need it; majority vote says so if missing
            continue
        if key not in where.keys():
            hint = (" keep actor_rollout_ref.rollout.calculate_log_probs=True" if key == "rollout_log_probs" else
                    " (compute_score returns pred / format)")
            raise KeyError(f"reward {reward!r} needs {key!r} for every response;{hint}")
        given[need] = where[key]
    n = len(data)
    responses = Responses(group=[str(u) for u in given["group"]],
                          data_source=[str(d) for d in given.get("data_source", [""] * n)],
                          pred=list(given["pred"]) if "pred" in given else None,
                          format=[float(f) for f in given["format"]] if "format" in given else None,
                          logprobs=given.get("logprobs"), mask=given.get("mask"),
                          vote=list(given["vote"]) if "vote" in given else None)
    kwargs = {**dict(score_kwargs or {}), "release_faithful": release_faithful}
    return torch.as_tensor(spec.rescore(responses, kwargs), dtype=torch.float32).reshape(-1)


def uniform_groups(uids: np.ndarray, scores: np.ndarray) -> set[str]:
    """The groups dynamic sampling drops."""
    groups = {uid: np.asarray(scores)[idx] for uid, idx in _groups(uids).items()}
    return set(groups) - set(sampling.informative(groups))


def kept_mask(data: DataProto, estimator: str, config: Mapping[str, Any] | None = None) -> np.ndarray:
    """Which responses stay in the batch: the estimator's own advantages decide (``sampling.drop_mask``;
    ``config``: its options under its config keys, as the local engine passes them)."""
    keep, _ = sampling.drop_mask(estimator, data.batch["rm_scores"], data.batch["response_mask"],
                                 data.non_tensor_batch["uid"], config=dict(config or {}) or None)
    return keep.cpu().numpy()


# --- TransferQueue glue -------------------------------------------------------------
def _uid(key: str) -> str:
    return key.split("_")[0]  # keys are {uid}_{session_id}_{index}; uids are uuid4 strings


def _as_list(value: Any) -> list:
    if isinstance(value, torch.Tensor):
        return list(value.unbind(0))
    return list(value.tolist()) if hasattr(value, "tolist") else list(value)


def _padded(tensors: list[torch.Tensor]) -> torch.Tensor:
    return torch.nn.utils.rnn.pad_sequence(tensors, batch_first=True)


class MirageReplayBuffer(ReplayBuffer):
    """verl's sync ReplayBuffer with mirage's rewards, dynamic sampling with a cap, and +-1 dropping."""

    def __init__(self, trainer_mode: str, trainer_config: Any, max_off_policy_threshold: Any,
                 max_off_policy_strategy: str, sampler_kwargs: Any, poll_interval: float = 2.0,
                 refill_fn: Any = None, **kwargs: Any):
        if trainer_mode != "sync":
            raise ValueError(f"MirageReplayBuffer supports trainer.v1.trainer_mode=sync only, got {trainer_mode!r}")
        self.options = SamplerOptions.from_kwargs(sampler_kwargs)
        if self.options.dynamic_sampling and refill_fn is None:
            raise ValueError("dynamic sampling needs the trainer's refill_fn")
        super().__init__(trainer_mode, trainer_config, max_off_policy_threshold, max_off_policy_strategy,
                         sampler_kwargs, poll_interval=self.options.poll_interval, refill_fn=refill_fn, **kwargs)
        # Advantages are computed in this process: fail here, loudly, if the plugin is missing.
        verl_name = get_estimator(self.options.estimator).verl_name
        try:
            core_algos.get_adv_estimator_fn(verl_name)
        except ValueError:
            raise RuntimeError(f"advantage estimator {verl_name!r} is not registered in this process: set "
                               "VERL_USE_EXTERNAL_MODULES=mirage.train.verl.plugin for every Ray process") from None
        self._scores: dict[str, np.ndarray] = {}  # uid -> training scores of its responses

    # 1. scores (and the group/log-prob rewrite) of newly finished groups
    def _score_groups(self, partition_id: str, uids: set[str]) -> None:
        new = uids - self._scores.keys()
        keys = [k for k in self.partitions[partition_id] if _uid(k) in new]
        if not keys:
            self._scores.update({uid: np.zeros(0) for uid in new})  # a failed group with no responses
            return
        needs = set(get_reward(self.options.reward).needs) if self.options.rescores else set()
        wanted = ["rm_scores", "response_mask"]
        if needs & {"pred", "format"}:
            wanted.append("extra_fields")  # compute_score's pred / format travel in reward_extra_info
        if "data_source" in needs:
            wanted.append("data_source")
        if "logprobs" in needs:
            wanted.append("rollout_log_probs")
        got = tq.kv_batch_get(keys=keys, partition_id=partition_id, select_fields=wanted)
        rm_scores = _as_list(got["rm_scores"])
        scores = torch.stack([s.sum() for s in rm_scores]).numpy()
        if self.options.rescores:
            data = self._as_dataproto(keys, got)
            scores = training_scores(data, self.options.reward, self.options.release_faithful,
                                     self.options.score_kwargs).numpy()
            # the score sits on the last response token, as verl's AgentLoopOutput puts it
            new_rm = []
            for s, value in zip(rm_scores, scores):
                t = torch.zeros_like(s, dtype=torch.float32)
                t[-1] = float(value)
                new_rm.append(t)
            tq.kv_batch_put(keys=keys, partition_id=partition_id,
                            fields=TensorDict({"rm_scores": torch.nested.as_nested_tensor(new_rm, layout=torch.jagged)},
                                              batch_size=len(keys)))
        uid_arr = np.array([_uid(k) for k in keys], dtype=object)
        for uid in new:
            self._scores[uid] = scores[uid_arr == uid]

    @staticmethod
    def _as_dataproto(keys: list[str], got: TensorDict) -> DataProto:
        tensors = {"rm_scores": _padded(_as_list(got["rm_scores"])),
                   "response_mask": _padded(_as_list(got["response_mask"]))}
        if "rollout_log_probs" in got.keys():
            tensors["rollout_log_probs"] = _padded(_as_list(got["rollout_log_probs"]))
        non_tensors = {"uid": np.array([_uid(k) for k in keys], dtype=object)}
        if "extra_fields" in got.keys():
            infos = [(getattr(e, "data", e) or {}).get("reward_extra_info", {}) for e in _as_list(got["extra_fields"])]
            for name in ("pred", "format"):
                missing = [k for k, info in zip(keys, infos) if name not in info]
                if missing:
                    raise KeyError(f"compute_score returned no {name!r} for responses {missing[:3]}")
                non_tensors[name] = np.array([info[name] for info in infos], dtype=object)
        if "data_source" in got.keys():
            non_tensors["data_source"] = np.array(_as_list(got["data_source"]), dtype=object)
            if "extra_fields" in got.keys():  # a checker's vote column (code: behaviour), for majority vote
                non_tensors["vote"] = np.array(vote_values(infos, non_tensors["data_source"]), dtype=object)
        return DataProto.from_dict(tensors=tensors, non_tensors=non_tensors)

    # 2. the sync sampling loop: whole generation batches, capped, then fall back
    def sample(self, global_steps: int, partition_id: str, batch_size: int) -> tuple[KVBatchMeta, dict]:
        if partition_id == "val":
            return super().sample(global_steps, partition_id, batch_size)
        opts = self.options
        self._scores = {}  # sync mode: nothing outlives a step
        gen_batches, fallback = 1, False
        last_debug = time.time()
        while True:
            self._sync_metadata_from_transfer_queue()
            if self.pending_keys[partition_id] or self.running_keys[partition_id]:
                last_debug = self._wait_for_next_poll(partition_id, last_debug)
                continue
            terminal = self.finished_keys[partition_id] | self.failure_keys[partition_id]
            self._score_groups(partition_id, terminal)
            usable = {uid for uid in terminal if len(self._scores[uid])}  # failed groups may have no responses
            # without dynamic sampling every group is kept, as in the local engine
            informative = (set(sampling.informative({uid: self._scores[uid] for uid in usable}))
                           if opts.dynamic_sampling else usable)
            uninformative = usable - informative
            action = sampling.next_action(len(informative), gen_batches, batch_size, opts.dynamic_sampling,
                                          opts.max_num_gen_batches)
            if action == sampling.TRAIN:
                pool = informative
                break
            if action == sampling.GENERATE:
                self.refill_fn(batch_size)
                gen_batches += 1
                continue
            # Cap reached: train on the groups with signal; with none, on groups without
            # (a zero-advantage step, as the release does).
            fallback = True
            pool = informative or usable
            logger.warning("step %d: %d of %d groups carry signal after %d generation batches; training on %s",
                           global_steps, len(informative), batch_size, gen_batches,
                           "those" if informative else "groups without signal (a zero-advantage step)")
            break
        if not pool:
            raise RuntimeError(f"step {global_steps}: no finished prompt groups to train on")

        selected, snapshot, _ = self._select_prompt_uids(partition_id, pool, batch_size)
        self._clear_groups(partition_id, terminal - set(selected))
        batch = self._materialize_batch(partition_id, selected, snapshot)
        if not batch.keys:
            raise RuntimeError(f"step {global_steps}: the selected groups have no responses (all rollouts failed)")
        metrics = {
            "train/num_gen_batches": float(gen_batches),
            "train/kept_groups": float(len(set(selected) & informative)),
            "train/fallback": float(fallback),
            "training/filter_groups/evicted_samples": float(len(uninformative - set(selected))),
        }
        metrics.update(self._response_metrics(batch))
        batch, dropped = self._drop_unselected(batch)
        metrics["train/dropped_responses"] = float(dropped)
        return batch, metrics

    def _response_metrics(self, batch: KVBatchMeta) -> dict[str, float]:
        got = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id, select_fields=["extra_fields"])
        infos = [(getattr(e, "data", e) or {}).get("reward_extra_info", {}) for e in _as_list(got["extra_fields"])]
        out = {}
        for name in ("acc", "format"):
            values = [float(info[name]) for info in infos if info.get(name) is not None]
            if values:
                out[f"train/{name}/mean"] = float(np.mean(values))
        out.update(sampling.procedure_shares(info.get("procedure") for info in infos))
        return out

    # 3. +-1 estimators: responses with zero advantage leave the batch
    def _drop_unselected(self, batch: KVBatchMeta) -> tuple[KVBatchMeta, int]:
        if not get_estimator(self.options.estimator).drops_unselected:
            return batch, 0
        got = tq.kv_batch_get(keys=batch.keys, partition_id=batch.partition_id,
                              select_fields=["rm_scores", "response_mask"])
        data = self._as_dataproto(batch.keys, got)
        keep = kept_mask(data, self.options.estimator, self.options.estimator_config)
        if not keep.any():
            keep[0] = True  # verl needs one sample; its advantage is 0, so the update is a no-op
        dropped = [k for k, kept in zip(batch.keys, keep) if not kept]
        if dropped:
            tq.kv_clear(keys=dropped, partition_id=batch.partition_id)
        kept_keys = [k for k, kept in zip(batch.keys, keep) if kept]
        kept_tags = [t for t, kept in zip(batch.tags, keep) if kept]
        return KVBatchMeta(partition_id=batch.partition_id, keys=kept_keys, tags=kept_tags,
                           extra_info=batch.extra_info), len(dropped)
