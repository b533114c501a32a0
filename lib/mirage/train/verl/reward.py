"""verl 0.9.1 reward manager for mirage: verl's process-based ``remote`` manager, plus sample identity.

``mirage.rewards.compute_score`` runs math-verify in its own worker process, so it is
safe from any thread; verl's ``remote`` manager additionally scores in separate Ray
actor processes (math-verify is not thread-safe and its timeout needs the main
thread), as verl's own documentation advises for math-verify. verl passes the reward
function only (data_source, solution_str, ground_truth, extra_info), so two
responses with identical text in one group would draw the same random-reward coin.
This manager adds what makes each response distinct: the training step
(``global_steps``), the response's index in its group (``session_id``) and the
prompt's ``uid``. They travel inside ``extra_info`` (the only field verl forwards
to the scoring process) and are turned back into ``compute_score``'s ``step`` and
``sample_index`` keywords there.

Selected with ``reward.reward_manager.source=importlib``,
``reward.reward_manager.module.path=pkg://mirage.train.verl.reward`` and
``reward.reward_manager.name=MirageRewardManager``.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import numpy as np
from verl import DataProto
from verl.experimental.reward_loop.reward_manager.remote import RemoteRewardManager

_IDENTITY = "_mirage_sample"  # extra_info key carrying (step, sample_index) to the scoring process


def score_with_identity(score_fn: Callable[..., Any], *args: Any, extra_info: dict | None = None,
                        **kwargs: Any) -> Any:
    """Call ``score_fn`` with the sample identity moved from ``extra_info`` into keywords."""
    extra_info = dict(extra_info or {})
    identity = extra_info.pop(_IDENTITY, None) or {}
    return score_fn(*args, extra_info=extra_info, **identity, **kwargs)


class MirageRewardManager(RemoteRewardManager):
    """verl's ``remote`` reward manager; each response is scored with its step and index in the group."""

    def __init__(self, config, tokenizer, compute_score, reward_router_address=None, reward_model_tokenizer=None):
        if compute_score is None:
            raise ValueError("MirageRewardManager needs reward.custom_reward_function.path (mirage.rewards)")
        # A partial of module-level functions pickles by reference into the scoring actors.
        super().__init__(config, tokenizer, functools.partial(score_with_identity, compute_score),
                         reward_router_address=reward_router_address, reward_model_tokenizer=reward_model_tokenizer)

    async def run_single(self, data: DataProto) -> dict:
        nt = data.non_tensor_batch
        infos = []
        for i in range(len(data)):
            info = dict(nt["extra_info"][i] or {}) if "extra_info" in nt else {}
            if "uid" in nt:
                info.setdefault("uid", str(nt["uid"][i]))
            identity = {}
            if "global_steps" in nt:
                identity["step"] = int(nt["global_steps"][i])
            if "session_id" in nt:
                identity["sample_index"] = int(nt["session_id"][i])
            info[_IDENTITY] = identity
            infos.append(info)
        extra = np.empty(len(infos), dtype=object)
        extra[:] = infos
        data = DataProto(batch=data.batch, non_tensor_batch={**nt, "extra_info": extra}, meta_info=data.meta_info)
        return await super().run_single(data)
