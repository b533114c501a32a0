"""mirage's reward manager and training sampler against verl 0.9.1's real classes, on CPU.

First the scoring and selection logic on hand-built ``DataProto`` batches, then the
``MirageReplayBuffer`` (a subclass of verl's V1 ``ReplayBuffer``) on a real local
Ray cluster and TransferQueue, filled the way verl's agent loop fills it (verl's own
``AgentLoopOutput.as_dict`` and ``list_of_dict_to_tensordict``), and the reward
manager loaded by verl's ``load_reward_manager`` scoring in verl's Ray scoring actors,
and finally verl's own ``PPOTrainerSync`` built from mirage's config: it dispatches and
refills prompts, samples through mirage's buffer and computes advantages. Generation is
the only thing replaced (vLLM cannot run on a CPU): a stand-in writes finished groups the
way verl's agent loop does, or the sampler's ``refill_fn`` adds them directly.
"""

from __future__ import annotations

import uuid

import numpy as np
import pytest

pytestmark = pytest.mark.verl


def _dataproto(tensors, non_tensors):
    from verl import DataProto

    return DataProto.from_dict(tensors=tensors, non_tensors={k: np.array(v, dtype=object)
                                                              for k, v in non_tensors.items()})


# --- the logic on hand-built DataProto batches -----------------------------------------
def test_majority_vote_over_each_group():
    import torch

    from mirage.train.verl.sampler import training_scores

    data = _dataproto({"response_mask": torch.ones(8, 3)}, {
        "uid": ["m"] * 4 + ["k"] * 4,
        "data_source": ["math500"] * 4 + ["korbench/cipher"] * 4,
        # math: 1/2, 0.5 and \frac12 are one answer; the last lacks the format
        # cipher: exact strings, so "abc" is a different answer from "ABC"
        "pred": ["1/2", "0.5", "3", "\\frac12", "ABC", "abc", "ABC", None],
        "format": [1.0, 1.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0],
    })
    assert training_scores(data, "majority_vote").tolist() == [1, 1, 0, 0, 1, 0, 1, 0]


def test_majority_vote_on_code_reads_the_vote_column_from_the_batch():
    """verl's path: compute_score's code_vote travels with the responses (reward_extra_info -> ``vote``); the
    programs that behave alike vote together whatever their text, and without the column it is an error."""
    import torch

    from mirage.rewards import compute_score
    from mirage.tasks import toy_code as C
    from mirage.train.verl.sampler import training_scores

    problem = C.generate("test", 1, seed=1)[0]
    row = C.to_row(problem, 0, "test")
    texts = [problem.response(True), problem.response(True).replace(" for i", "  for i"), problem.response(False),
             problem.response(False)]
    results = [compute_score("toy-code", t, row["reward_model"]["ground_truth"], row["extra_info"]) for t in texts]
    fields = {"uid": ["c"] * 4, "data_source": ["toy-code"] * 4, "pred": [r["pred"] for r in results],
              "format": [r["format"] for r in results]}
    with pytest.raises(ValueError, match="code_vote"):
        training_scores(_dataproto({"response_mask": torch.ones(4, 3)}, fields), "majority_vote")
    data = _dataproto({"response_mask": torch.ones(4, 3)}, {**fields, "vote": [r["code_vote"] for r in results]})
    # by text: 1 + 1 correct vs 2 equal buggy texts (the buggy one would win); by behaviour 2 vs 2, the first wins
    assert training_scores(data, "majority_vote").tolist() == [1, 1, 0, 0]


def test_entropy_reward_is_the_mean_rollout_logprob():
    import torch

    from mirage.train.verl.sampler import training_scores

    logprobs = torch.tensor([[-1.0, -3.0, -7.0], [-0.5, -0.5, -0.5], [-2.0, float("-inf"), 0.0]])
    mask = torch.tensor([[1, 1, 0], [1, 1, 1], [1, 0, 0]])
    data = _dataproto({"rollout_log_probs": logprobs, "response_mask": mask}, {"uid": ["a", "a", "a"]})
    assert training_scores(data, "entropy_min").tolist() == [-2.0, -0.5, -2.0]
    with pytest.raises(KeyError, match="rollout_log_probs"):
        training_scores(_dataproto({"response_mask": mask}, {"uid": ["a"] * 3}), "entropy_min")
    with pytest.raises(ValueError, match="per response"):
        training_scores(data, "random")


def test_uniform_groups_and_pm1_dropping():
    import torch

    from mirage.train.verl.sampler import kept_mask, uniform_groups

    uids = np.array(["a"] * 4 + ["b"] * 3 + ["c"], dtype=object)
    scores = np.array([1, 0, 0, 1, 0, 0, 0, 1], dtype=float)
    assert uniform_groups(uids, scores) == {"b"}  # a single response is not a group
    lengths = torch.tensor([3, 5, 2, 4, 1, 5, 3, 2])
    mask = (torch.arange(5)[None] < lengths[:, None]).long()
    rm = torch.zeros(8, 5)
    rm[torch.arange(8), lengths - 1] = torch.tensor(scores, dtype=torch.float32)
    data = _dataproto({"rm_scores": rm, "response_mask": mask}, {"uid": uids})
    assert kept_mask(data, "nsr_pm1").tolist() == [0, 1, 1, 0, 1, 1, 1, 0]  # wrong ones stay, with -1
    assert kept_mask(data, "psr_pm1").tolist() == [1, 0, 0, 1, 0, 0, 0, 1]
    assert kept_mask(data, "masked_nsr").all() and kept_mask(data, "w_reinforce").all()  # masking keeps tokens


# --- against a real Ray + TransferQueue -------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    import ray
    import transfer_queue as tq
    from omegaconf import OmegaConf

    from mirage.train import verl as vb

    for attempt in range(3):  # Ray gives its raylet 30 s to start; a loaded 2-core machine can miss that
        try:
            ray.init(num_cpus=4, include_dashboard=False, log_to_driver=False)
            break
        except Exception as e:  # noqa: BLE001 - only the start-up timeout is retried
            ray.shutdown()
            if "timed out during startup" not in str(e) or attempt == 2:
                raise
    conf = OmegaConf.load(vb.verl_config_dir() / "transfer_queue" / "transfer_queue.yaml")
    conf.enable = True
    conf.backend.SimpleStorage.num_data_storage_units = 1
    conf.backend.SimpleStorage.total_storage_size = 2000
    tq.init(conf)
    yield tq
    tq.close()
    ray.shutdown()


@pytest.fixture
def tq(cluster):
    yield cluster
    listing = cluster.kv_list("train") or {}
    keys = list(listing.get("train", {}))
    if keys:
        cluster.kv_clear(keys=keys, partition_id="train")


def put_group(tq, scores, preds=None, formats=None, logprobs=None, data_source="math500", step=1):
    """One finished prompt group, stored as verl's agent loop stores it."""
    from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
    from verl.utils.tensordict_utils import list_of_dict_to_tensordict

    uid = str(uuid.uuid4())
    keys, fields, tags = [], [], []
    for i, score in enumerate(scores):
        lp = logprobs[i] if logprobs else [-0.5] * (3 + i)
        info = {"score": float(score), "acc": float(score), "format": float(formats[i]) if formats else 1.0,
                "pred": preds[i] if preds else str(score)}
        out = AgentLoopOutput(prompt_ids=[1, 2], response_ids=list(range(5, 5 + len(lp))), response_mask=[1] * len(lp),
                              response_logprobs=lp, reward_score=float(score), metrics=AgentLoopMetrics(),
                              extra_fields={"reward_extra_info": info, "min_global_steps": step,
                                            "max_global_steps": step})
        field = out.as_dict()
        field.update(uid=uid, session_id=i, global_steps=step, data_source=data_source)
        keys.append(f"{uid}_{i}_0")
        fields.append(field)
        tags.append({"status": "success", "prompt_len": 2, "response_len": len(lp), "seq_len": 2 + len(lp),
                     "global_steps": step, "min_global_steps": step, "max_global_steps": step})
    tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(fields), tags=tags, partition_id="train")
    tq.kv_put(key=uid, partition_id="train", tag={"is_prompt": True, "status": "finished", "global_steps": step})
    return uid


def buffer(tq, refill_groups=(), **options):
    """The sampler as verl's trainer builds it; refill_fn stands in for dispatching prompts to vLLM."""
    import mirage.train.verl.plugin  # noqa: F401  (VERL_USE_EXTERNAL_MODULES loads it in verl's processes)
    from mirage.train.verl.sampler import MirageReplayBuffer

    pending, refills = list(refill_groups), []

    def refill(n):
        refills.append(n)
        for _ in range(n):
            put_group(tq, pending.pop(0) if pending else [0, 0])
        return n

    rb = MirageReplayBuffer("sync", {}, 8, "drop", {"poll_interval": 0.05, **options}, refill_fn=refill)
    return rb, refills


def stored_scores(tq, keys):
    got = tq.kv_batch_get(keys=keys, partition_id="train", select_fields=["rm_scores"])
    return [float(t.sum()) for t in got["rm_scores"].unbind()]


def remaining(tq):
    return set((tq.kv_list("train") or {}).get("train", {}))


def test_sampler_rewrites_majority_vote_scores_in_the_queue(tq):
    put_group(tq, [0, 0, 0, 0], preds=["1/2", "0.5", "3", "\\frac12"], formats=[1, 1, 1, 0])
    rb, refills = buffer(tq, reward="majority_vote")
    batch, metrics = rb.sample(1, "train", 1)
    assert stored_scores(tq, batch.keys) == [1.0, 1.0, 0.0, 0.0]  # what advantages and critic/score will read
    assert refills == [] and metrics["train/kept_groups"] == 1 and metrics["train/format/mean"] == 0.75
    assert [t["seq_len"] for t in batch.tags] == [5, 6, 7, 8]  # verl's tags survive the rewrite


def test_sampler_scores_entropy_from_rollout_logprobs(tq):
    put_group(tq, [1, 0, 1], logprobs=[[-1.0, -3.0], [-0.5, -0.5, -0.5], [-2.0]])
    rb, _ = buffer(tq, reward="entropy_min")
    batch, _ = rb.sample(1, "train", 1)
    assert stored_scores(tq, batch.keys) == [-2.0, -0.5, -2.0]


def test_dynamic_sampling_refills_whole_batches_then_falls_back(tq):
    put_group(tq, [1, 0, 1, 1])
    put_group(tq, [1, 1, 1, 1])  # no signal
    rb, refills = buffer(tq, refill_groups=[[0, 0], [1, 1]])
    batch, metrics = rb.sample(1, "train", 2)
    # one refill of a whole batch (cap: 2 generation batches), then train on the one group with signal
    assert refills == [2]
    assert metrics["train/num_gen_batches"] == 2 and metrics["train/fallback"] == 1
    assert metrics["train/kept_groups"] == 1 and metrics["training/filter_groups/evicted_samples"] == 3
    assert len(batch.keys) == 4 and stored_scores(tq, batch.keys) == [1, 0, 1, 1]
    assert remaining(tq) == set(batch.keys)  # the groups without signal were cleared from the queue


def test_dynamic_sampling_fills_the_batch_when_refills_bring_signal(tq):
    put_group(tq, [0, 0])
    put_group(tq, [1, 0])
    rb, refills = buffer(tq, refill_groups=[[0, 1], [1, 1]], max_num_gen_batches=0)
    batch, metrics = rb.sample(1, "train", 2)
    assert refills == [2] and metrics["train/fallback"] == 0 and metrics["train/kept_groups"] == 2
    assert sorted(stored_scores(tq, batch.keys)) == [0, 0, 1, 1]


def test_pm1_estimators_drop_unselected_responses(tq):
    put_group(tq, [1, 0, 0, 1])
    rb, _ = buffer(tq, estimator="nsr_pm1", dynamic_sampling=False)
    batch, metrics = rb.sample(1, "train", 1)
    assert stored_scores(tq, batch.keys) == [0.0, 0.0] and metrics["train/dropped_responses"] == 2
    assert remaining(tq) == set(batch.keys)
    assert metrics["train/acc/mean"] == 0.5  # measured before dropping: the responses generated


def test_sampler_refuses_what_it_cannot_do(tq):
    from mirage.train.verl.sampler import MirageReplayBuffer

    with pytest.raises(ValueError, match="sync"):
        MirageReplayBuffer("colocate_async", {}, 8, "drop", {}, refill_fn=lambda n: n)
    with pytest.raises(KeyError, match="unknown keys"):
        MirageReplayBuffer("sync", {}, 8, "drop", {"metric": "acc"}, refill_fn=lambda n: n)
    with pytest.raises(ValueError, match="unknown reward"):
        MirageReplayBuffer("sync", {}, 8, "drop", {"reward": "vibes"}, refill_fn=lambda n: n)


def test_reward_manager_scores_in_verls_scoring_actors_with_sample_identity(cluster):
    import torch

    from verl import DataProto
    from verl.trainer.ppo.reward import load_reward_manager

    from mirage.rewards import compute_score
    from mirage.testbed.tokenizer import make_tokenizer
    from mirage.train import verl as vb
    from mirage.train.verl.reward import MirageRewardManager

    _, argv = vb.build_command("m", "math", "random", 0, "/tmp/run")
    cfg = vb.compose_config(vb.overrides_of(argv) + ["reward.num_workers=1"])
    tok = make_tokenizer()
    manager = load_reward_manager(cfg, tok)  # verl resolves our class and mirage.rewards by their pkg:// paths
    assert isinstance(manager, MirageRewardManager)

    text = "<think>half</think> <answer>0.5</answer>"
    response = tok(text, add_special_tokens=False)["input_ids"]

    def item(session_id, step=7):
        prompt = [1, 2, 3]
        n = len(prompt) + len(response)
        return DataProto.from_dict(
            tensors={"prompts": torch.tensor([prompt]), "responses": torch.tensor([response]),
                     "attention_mask": torch.ones(1, n, dtype=torch.long), "input_ids": torch.ones(1, n).long()},
            non_tensors={"uid": np.array(["u1"], dtype=object), "session_id": np.array([session_id]),
                         "global_steps": np.array([step]), "data_source": np.array(["math500"], dtype=object),
                         "reward_model": np.array([{"ground_truth": "\\frac{1}{2}", "style": "rule"}]),
                         "extra_info": np.array([{"index": 4, "split": "train"}], dtype=object)})

    results = [manager.loop.run_until_complete(manager.run_single(item(i))) for i in range(16)]
    for i, res in enumerate(results):
        direct = compute_score("math500", text, "\\frac{1}{2}", {"index": 4, "split": "train", "uid": "u1"},
                               variant="random", p=0.5, seed=0, release_faithful=False, step=7, sample_index=i)
        assert res["reward_score"] == direct["score"] and res["reward_extra_info"]["acc"] == 1.0
    # the same text gets its own coin at each index of the group
    assert {r["reward_score"] for r in results} == {0.0, 1.0}


# --- verl's own sync trainer, driving the sampler and computing advantages ------------------
@pytest.fixture(scope="module")
def tiny_model_and_data(tmp_path_factory):
    """A 1-layer testbed model (tokenizer + config) and 16-row verl parquets for the math task's files."""
    import pandas as pd

    from mirage.tasks import get_task
    from mirage.testbed.models import make_model
    from mirage.testbed.tokenizer import make_tokenizer

    root = tmp_path_factory.mktemp("verl_trainer")
    tok = make_tokenizer()
    make_model(tok, hidden=32, layers=1, heads=2).save_pretrained(root / "model")
    tok.save_pretrained(root / "model")
    rows = [{"data_source": "math500", "prompt": [{"role": "user", "content": f"what is {i}+1?"}], "ability": "math",
             "reward_model": {"style": "rule", "ground_truth": str(i + 1)}, "extra_info": {"index": i, "split": "train"}}
            for i in range(16)]
    (root / "data" / "verl").mkdir(parents=True)
    math = get_task("math")
    for name in (math.train, *math.evals):
        pd.DataFrame(rows).to_parquet(root / "data" / "verl" / f"{name}.parquet")
    return root, tok


class StandInRollout:
    """Finishes each dispatched prompt group as verl's AgentLoopWorkerTQ does, scored by mirage.rewards.

    vLLM cannot run here; this replaces generation only. ``answers(call, ground_truth)`` gives the
    group's answers for the ``call``-th dispatch.
    """

    def __init__(self, tq, tok, answers):
        self.tq, self.tok, self.answers, self.calls = tq, tok, answers, []

    def generate_sequences(self, batch):
        from verl.experimental.agent_loop.agent_loop import AgentLoopMetrics, AgentLoopOutput
        from verl.utils.tensordict_utils import list_of_dict_to_tensordict

        from mirage.rewards import compute_score

        call = len(self.calls)
        self.calls.append(len(batch))
        for i in range(len(batch)):
            uid, gt, info = batch["uid"][i], batch["reward_model"][i]["ground_truth"], batch["extra_info"][i]
            keys, fields, tags = [], [], []
            for s, answer in enumerate(self.answers(call, gt)):
                text = f"<think>t</think> <answer>{answer}</answer>"
                scored = compute_score("math500", text, gt, info)
                ids = self.tok(text, add_special_tokens=False)["input_ids"]
                out = AgentLoopOutput(prompt_ids=[1, 2], response_ids=ids, response_mask=[1] * len(ids),
                                      response_logprobs=[-0.1] * len(ids), reward_score=scored["score"], num_turns=2,
                                      metrics=AgentLoopMetrics(), extra_fields={
                                          "reward_extra_info": scored, "min_global_steps": 1, "max_global_steps": 1})
                field = out.as_dict()
                field.update(uid=uid, session_id=s, global_steps=1, data_source="math500")
                keys.append(f"{uid}_{s}_0")
                fields.append(field)
                tags.append({"status": "success", "prompt_len": 2, "response_len": len(ids), "seq_len": 2 + len(ids),
                             "global_steps": 1, "min_global_steps": 1, "max_global_steps": 1})
            self.tq.kv_batch_put(keys=keys, fields=list_of_dict_to_tensordict(fields), tags=tags, partition_id="train")
            self.tq.kv_put(key=uid, partition_id="train", tag={"status": "finished"})


CASES = {
    # majority vote: the wrong answer "x" is the majority, so it is what gets rewarded
    "majority_vote": (lambda call, gt: [gt, "x", "x", "x"], 16, [-1.5, 0.5, 0.5, 0.5] * 4, 1),
    # all-correct groups carry no signal: verl's own refill_fn draws a second batch, which has signal
    "ground_truth": (lambda call, gt: [gt] * 4 if call == 0 else [gt, "x", gt, "x"], 16, [0.866, -0.866] * 8, 2),
    # +-1 NSR: correct responses leave the batch, wrong ones get -1
    "nsr_pm1": (lambda call, gt: [gt, "x", "x", gt], 8, [-1.0] * 8, 1),
}


@pytest.mark.parametrize("condition", list(CASES))
def test_verls_sync_trainer_runs_the_data_path(tq, tiny_model_and_data, condition):
    """verl's PPOTrainerSync builds the sampler from mirage's config, dispatches prompts (and refills)
    with its own code, and computes advantages from what the sampler left in the TransferQueue."""
    from omegaconf import OmegaConf
    from tensordict import TensorDict
    from verl.trainer.ppo.v1 import get_trainer_cls

    import mirage.train.verl.plugin  # noqa: F401  (VERL_USE_EXTERNAL_MODULES does this in verl's processes)
    from mirage.recipes import PAPER_RECIPE
    from mirage.train import verl as vb
    from mirage.train.verl.sampler import MirageReplayBuffer

    root, tok = tiny_model_and_data
    answers, n_kept, want_adv, want_batches = CASES[condition]
    recipe = PAPER_RECIPE.replace(train_batch_size=4, rollout_n=4, ppo_mini_batch_size=4)
    _, argv = vb.build_command(str(root / "model"), "math", condition, 0, root / "run", recipe,
                               data_root=root / "data", extra=["data.dataloader_num_workers=0",
                                                               "+trainer.v1.sampler.sampler_kwargs.poll_interval=0.05"])
    cfg = vb.compose_config(vb.overrides_of(argv))
    OmegaConf.resolve(cfg)
    trainer = get_trainer_cls("sync")(config=cfg)
    assert isinstance(trainer.replay_buffer, MirageReplayBuffer)
    trainer._init_tokenizer()
    trainer._init_dataloader()
    trainer.global_steps = 1
    trainer.agent_loop_manager = StandInRollout(tq, tok, answers)

    trainer.prepare_step()  # verl dispatches one batch of prompts
    batch, metrics = trainer.replay_buffer.sample(1, "train", 4)
    assert metrics["train/num_gen_batches"] == want_batches and len(batch.keys) == n_kept
    assert trainer.agent_loop_manager.calls == [4] * want_batches
    # old log-probs come from the FSDP workers in a real run; here the rollout's stand in (verl's bypass mode)
    old = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["rollout_log_probs"])
    tq.kv_batch_put(keys=batch.keys, partition_id="train",
                    fields=TensorDict({"old_log_probs": old["rollout_log_probs"]}, batch_size=len(batch.keys)))
    batch = trainer._compute_advantage(batch, {})
    got = tq.kv_batch_get(keys=batch.keys, partition_id="train", select_fields=["advantages"])
    first_token = [float(a[0]) for a in got["advantages"].unbind()]
    assert first_token == pytest.approx(want_adv, abs=1e-3)
