"""The vLLM sampler's code around the engine, against a fake ``vllm`` module.

The fake implements exactly the surface VLLMSampler uses: ``vllm.LLM(model=..., **engine
args)``, ``LLM.get_tokenizer()``, ``LLM.generate(prompts, sampling_params, use_tqdm=...)``
returning ``RequestOutput``-shaped objects (``.outputs[i].index/.text/.token_ids/
.finish_reason/.cumulative_logprob``), and ``vllm.SamplingParams`` (max_tokens defaults to 16,
like vLLM). Like vLLM, child i of an n-sample request is drawn from seed + i, and
``cumulative_logprob`` is None unless the request asked for log-probs.
"""

from __future__ import annotations

import functools
import os
import random
import sys
import types
from dataclasses import dataclass

import pytest

from mirage.sample import parallel as par
from mirage.sample import vllm as vs
from mirage.sample.base import SamplingParams, prompt_seed


class FakeTokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        assert tokenize is False and add_generation_prompt is True
        return "".join(f"<{m['role']}>{m['content']}" for m in messages) + "<assistant>"

    def encode(self, text, add_special_tokens=True):
        return ([1] if add_special_tokens else []) + [ord(ch) for ch in text]  # 1 = BOS


@dataclass
class FakeSamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16  # vLLM's default: the sampler must always override it
    seed: int | None = None
    logprobs: int | None = None  # top log-probs per token besides the sampled one; None: none at all
    flat_logprobs: bool = False  # vLLM 0.24: False builds a {token: Logprob} dict per sampled token


@dataclass
class FakeCompletion:
    index: int
    text: str
    token_ids: list
    finish_reason: str
    cumulative_logprob: float | None = None


@dataclass
class FakeRequestOutput:
    prompt_token_ids: list
    outputs: list


class FakeLLM:
    instances: list = []

    def __init__(self, model, **engine_args):
        self.model, self.engine_args = model, engine_args
        self.calls = []  # (prompt token ids, params) per request
        FakeLLM.instances.append(self)

    def get_tokenizer(self):
        return FakeTokenizer()

    def generate(self, prompts, sampling_params, use_tqdm=True):
        assert isinstance(sampling_params, list) and len(sampling_params) == len(prompts)
        outs = []
        for prompt, sp in zip(prompts, sampling_params):
            ids = prompt["prompt_token_ids"]
            # log-probs without the flat container: a Python dict per sampled token, never read by mirage
            assert sp.logprobs is None or sp.flat_logprobs, "log-probs requested as per-token dicts"
            self.calls.append((ids, sp))
            children = [child(i, ids, seeded(sp.seed) + i, sp) for i in range(sp.n)]
            outs.append(FakeRequestOutput(ids, children[::-1]))  # vLLM does not promise index order
        return outs


def child(index, ids, seed, sp) -> FakeCompletion:
    """One sample: a pure function of the prompt, its own seed and the sampling settings."""
    rng = random.Random(f"{sum(ids)}/{len(ids)}/{seed}/{sp.temperature}")
    length = rng.randint(1, sp.max_tokens + 4)
    tokens = [rng.randint(97, 122) for _ in range(min(length, sp.max_tokens))]
    return FakeCompletion(index, "".join(map(chr, tokens)), tokens, "length" if length > sp.max_tokens else "stop",
                          cumulative_logprob=sum(token_logprobs(tokens)) if sp.logprobs is not None else None)


def token_logprobs(tokens):
    """The fake model's log-prob of each sampled token: a fixed function of the token."""
    return [-0.05 * (t - 96) for t in tokens]


def fake_vllm_module():
    return types.SimpleNamespace(LLM=FakeLLM, SamplingParams=FakeSamplingParams, __version__="fake")


def seeded(seed):
    """FakeLLM.child needs an integer seed; an unseeded request draws from the engine's own state."""
    return seed if seed is not None else random.randrange(1 << 30)


def make_fake_sampler(model="fake-model", **kwargs):
    """Picklable factory: builds a VLLMSampler on the fake engine (also inside spawned workers)."""
    sys.modules["vllm"] = fake_vllm_module()
    sampler = vs.VLLMSampler(model, **kwargs)
    sampler.cuda_visible_devices = os.environ.get("CUDA_VISIBLE_DEVICES")
    return sampler


class FailingSampler:
    def __init__(self):
        raise ValueError("engine could not start: no GPU")


@pytest.fixture(autouse=True)
def _fake_vllm(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", fake_vllm_module())
    FakeLLM.instances.clear()


PROMPTS = [[{"role": "user", "content": f"problem {i}: {'x' * i}"}] for i in range(7)]
SEEDS = [prompt_seed(3, f"toy/{i}") for i in range(7)]
PARAMS = SamplingParams(n=8, temperature=0.9, top_p=0.95, max_tokens=12)


def texts(results):
    return [[c.text for c in cs] for cs in results]


def test_engine_built_with_requested_args():
    s = vs.VLLMSampler("m", tensor_parallel_size=4, dtype="bfloat16", max_model_len=4096, seed=7)
    args = FakeLLM.instances[-1].engine_args
    assert FakeLLM.instances[-1].model == "m"
    assert (args["tensor_parallel_size"], args["dtype"], args["max_model_len"], args["seed"]) == \
        (4, "bfloat16", 4096, 7)
    assert s.describe()["tensor_parallel_size"] == 4


def test_prompt_is_chat_template_without_second_bos():
    s = vs.VLLMSampler("m")
    s.generate(PROMPTS[:2], PARAMS, SEEDS[:2])
    ids = [call[0] for call in FakeLLM.instances[-1].calls]
    expected = [[ord(ch) for ch in f"<user>{p[0]['content']}<assistant>"] for p in PROMPTS[:2]]
    assert ids == expected  # rendered with the generation prompt, no BOS prepended by encode


def test_sampling_params_explicit_and_seeded_per_prompt():
    s = vs.VLLMSampler("m")
    out = s.generate(PROMPTS, PARAMS, SEEDS)
    calls = FakeLLM.instances[-1].calls
    assert [sp.seed for _, sp in calls] == SEEDS
    for _, sp in calls:
        assert (sp.n, sp.temperature, sp.top_p, sp.max_tokens, sp.logprobs) == (8, 0.9, 0.95, 12, 0)
    assert [len(cs) for cs in out] == [8] * 7
    # children come back in index order (child i drawn from seed + i), whatever order the engine used
    ids, sp = calls[0]
    assert [c.text for c in out[0]] == [child(i, ids, SEEDS[0] + i, sp).text for i in range(8)]


def test_split_requests_use_disjoint_seed_offsets_and_match_one_request():
    whole = vs.VLLMSampler("m").generate(PROMPTS, PARAMS, SEEDS)
    split_sampler = vs.VLLMSampler("m", max_samples_per_call=3)
    split = split_sampler.generate(PROMPTS, PARAMS, SEEDS)
    calls = FakeLLM.instances[-1].calls
    assert [(sp.n, sp.seed - SEEDS[0]) for _, sp in calls[:3]] == [(3, 0), (3, 3), (2, 6)]
    for p in range(len(PROMPTS)):
        child_seeds = [sp.seed + i for ids, sp in calls[3 * p:3 * p + 3] for i in range(sp.n)]
        assert child_seeds == [SEEDS[p] + i for i in range(8)]  # disjoint, no gaps
    assert texts(split) == texts(whole)


def test_split_n():
    assert vs.split_n(8, None) == [(0, 8)]
    assert vs.split_n(8, 8) == [(0, 8)]
    assert vs.split_n(7, 3) == [(0, 3), (3, 3), (6, 1)]


def test_finish_reason_and_token_counts_recorded_without_token_ids():
    out = vs.VLLMSampler("m").generate(PROMPTS, PARAMS, SEEDS)
    flat = [c for cs in out for c in cs]
    assert {c.finish_reason for c in flat} == {"stop", "length"}
    for c in flat:
        assert c.num_tokens == len(c.text)  # the fake engine: one character per token
        assert c.token_ids is None and c.logprobs is None  # only what an evaluation stores travels back
        assert c.cumulative_logprob == pytest.approx(sum(token_logprobs(map(ord, c.text))))
        assert (c.finish_reason == "length") == (c.num_tokens == PARAMS.max_tokens) or c.finish_reason == "stop"
        assert c.num_tokens <= PARAMS.max_tokens


def test_batched_seeding_sends_unseeded_requests_in_one_call():
    s = vs.VLLMSampler("m", seeding="batched", seed=5)
    out = s.generate(PROMPTS, PARAMS, SEEDS)
    llm = FakeLLM.instances[-1]
    assert [sp.seed for _, sp in llm.calls] == [None] * len(PROMPTS)  # vLLM's batched sampler, not per request
    assert llm.engine_args["seed"] == 5 and [len(cs) for cs in out] == [8] * 7
    desc = s.describe()
    assert desc["seeding"] == "batched" and "batch-dependent" in desc["batch_invariance"]
    assert desc["vllm_version"] == "fake"
    with pytest.raises(ValueError, match="--vllm-seeding"):
        vs.VLLMSampler("m", seeding="sometimes")


def test_missing_vllm_gives_clear_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "vllm", None)
    with pytest.raises(ImportError, match="gpu extra"):
        vs.VLLMSampler("m")


@pytest.mark.parametrize("n_items,n_shards", [(0, 3), (1, 4), (7, 3), (8, 4), (10, 1), (5, 8)])
def test_shard_bounds_cover_in_order_and_balance(n_items, n_shards):
    bounds = par.shard_bounds(n_items, n_shards)
    assert len(bounds) == n_shards
    assert bounds[0][0] == 0 and bounds[-1][1] == n_items
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))
    sizes = [b - a for a, b in bounds]
    assert max(sizes) - min(sizes) <= 1


def test_gpu_groups():
    assert par.gpu_groups(["0", "1", "2", "3"], 2) == ["0,1", "2,3"]
    assert par.gpu_groups([4, 5, 6], 1) == ["4", "5", "6"]
    with pytest.raises(ValueError, match="tensor_parallel_size=2"):
        par.gpu_groups(["0", "1", "2"], 2)


@pytest.mark.parametrize("n_workers,n_prompts", [(3, 7), (4, 2), (2, 1)])
def test_sharded_sampler_merges_in_prompt_order(n_workers, n_prompts):
    single = vs.VLLMSampler("m").generate(PROMPTS[:n_prompts], PARAMS, SEEDS[:n_prompts])
    sharded = par.ShardedSampler([par.ThreadWorker(vs.VLLMSampler("m")) for _ in range(n_workers)])
    try:
        merged = sharded.generate(PROMPTS[:n_prompts], PARAMS, SEEDS[:n_prompts])
        busy = [len(w.sampler.llm.calls) for w in sharded.workers]
    finally:
        sharded.close()
    assert texts(merged) == texts(single)
    assert sum(b > 0 for b in busy) == min(n_workers, n_prompts)  # every non-empty shard ran on its own engine


def test_process_workers_pin_gpus_and_merge():
    factory = functools.partial(make_fake_sampler, "fake-model")
    sharded = par.data_parallel(factory, ["0", "1", "2", "3"], tensor_parallel_size=2)
    try:
        merged = sharded.generate(PROMPTS, PARAMS, SEEDS)
        desc = sharded.describe()
        rendered = sharded.render_prompt(PROMPTS[0])
    finally:
        sharded.close()
    assert [w.process.exitcode for w in sharded.workers] == [0, 0]
    assert texts(merged) == texts(vs.VLLMSampler("fake-model").generate(PROMPTS, PARAMS, SEEDS))
    assert desc["data_parallel_size"] == 2
    assert [w["hardware"]["cuda_visible_devices"] for w in desc["workers"]] == ["0,1", "2,3"]
    assert rendered == "<user>problem 0: <assistant>"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != "0,1"  # the parent's environment is restored


def test_process_worker_reports_child_errors():
    with pytest.raises(RuntimeError, match="engine could not start: no GPU"):
        par.ProcessWorker(FailingSampler, {"CUDA_VISIBLE_DEVICES": "0"})
    worker = par.ProcessWorker(functools.partial(make_fake_sampler, "m"))
    try:
        with pytest.raises(RuntimeError, match="prompts but"):
            worker.submit(PROMPTS, PARAMS, SEEDS[:2]).result()
        assert len(worker.submit(PROMPTS[:1], PARAMS, SEEDS[:1]).result()[0]) == 8  # still serving
    finally:
        worker.close()


# --- the vLLM path through mirage.evaluate ---------------------------------------------------
class FlakyLLM(FakeLLM):
    """Fails on its second generate call, like an engine dying mid-evaluation."""

    def generate(self, prompts, sampling_params, use_tqdm=True):
        self.served = getattr(self, "served", 0) + 1
        if self.served > 1:
            raise RuntimeError("CUDA error: an illegal memory access was encountered")
        return super().generate(prompts, sampling_params, use_tqdm)


@pytest.fixture
def toy_dataset(tmp_path):
    from mirage.tasks.toy import problems_frame

    path = tmp_path / "toy.parquet"
    problems_frame("toy-math", "test", 5, seed=2).to_parquet(path)
    return str(path)


def _rows(out):
    from mirage.evaluate import read_samples

    return read_samples(out).sort_values(["problem_id", "sample_index"]).reset_index(drop=True)


def test_evaluate_with_vllm_resumes_and_shards_identically(toy_dataset, tmp_path, monkeypatch):
    import pandas as pd

    from mirage.evaluate import evaluate

    kwargs = dict(n=4, max_tokens=10, seed=1, batch_size=2, score_processes=0, progress=False)
    evaluate("fake-model", toy_dataset, sampler=vs.VLLMSampler("fake-model"), out_dir=tmp_path / "ref", **kwargs)

    monkeypatch.setattr(sys.modules["vllm"], "LLM", FlakyLLM)
    with pytest.raises(RuntimeError, match="illegal memory access"):
        evaluate("fake-model", toy_dataset, sampler=vs.VLLMSampler("fake-model"), out_dir=tmp_path / "cut", **kwargs)
    assert len(list((tmp_path / "cut" / "samples" / "toy").glob("part-*.parquet"))) == 1  # the first chunk kept
    monkeypatch.setattr(sys.modules["vllm"], "LLM", FakeLLM)
    evaluate("fake-model", toy_dataset, sampler=vs.VLLMSampler("fake-model"), out_dir=tmp_path / "cut", **kwargs)
    reference = _rows(tmp_path / "ref")
    assert len(reference) == 20 and set(reference["finish_reason"]) == {"stop", "length"}
    # the entropy predictor's column: minus each sample's cumulative log-prob, never NaN
    expected = [-sum(token_logprobs(map(ord, t))) for t in reference["text"]]
    assert reference["sum_neg_logprob"].tolist() == pytest.approx(expected)
    pd.testing.assert_frame_equal(_rows(tmp_path / "cut"), reference)

    sharded = par.data_parallel(functools.partial(make_fake_sampler, "fake-model"), ["0", "1", "2"])
    try:
        evaluate("fake-model", toy_dataset, sampler=sharded, out_dir=tmp_path / "dp", **kwargs)
    finally:
        sharded.close()
    pd.testing.assert_frame_equal(_rows(tmp_path / "dp"), reference)


def test_default_chunk_grows_with_engines():
    from mirage.evaluate.core import default_batch_size

    assert default_batch_size(vs.VLLMSampler("m")) == 64
    sharded = par.ShardedSampler([par.ThreadWorker(vs.VLLMSampler("m")) for _ in range(3)])
    try:
        assert default_batch_size(sharded) == 192
    finally:
        sharded.close()


# --- engines at scale: started in parallel, closed between the checkpoints of a sweep --------------
# A fake ``vllm`` package on disk, so that spawned worker processes import it too (they inherit sys.path).
# Each engine logs "start" when built and "close" when shut down, with its pid and GPUs.
FAKE_VLLM_PACKAGE = '''
import json, os, random
from dataclasses import dataclass

__version__ = "0.0-fake"


def _log(event, model, **more):
    with open(os.environ["FAKE_VLLM_LOG"], "a") as f:
        f.write(json.dumps({"event": event, "pid": os.getpid(), "model": model,
                            "gpus": os.environ.get("CUDA_VISIBLE_DEVICES"), **more}) + "\\n")


@dataclass
class SamplingParams:
    n: int = 1
    temperature: float = 1.0
    top_p: float = 1.0
    max_tokens: int = 16
    seed: int | None = None
    logprobs: int | None = None
    flat_logprobs: bool = False


@dataclass
class _Out:
    index: int
    text: str
    token_ids: list
    finish_reason: str


@dataclass
class _Request:
    outputs: list


class _Tokenizer:
    def apply_chat_template(self, messages, tokenize=False, add_generation_prompt=False):
        return "".join(m["content"] for m in messages)

    def encode(self, text, add_special_tokens=True):
        return [ord(c) for c in text]


class _EngineCore:
    def __init__(self, model):
        self.model = model

    def shutdown(self):
        _log("close", self.model)


class _Engine:
    def __init__(self, model):
        self.engine_core = _EngineCore(model)


class LLM:
    def __init__(self, model, **engine_args):
        _log("start", model, max_model_len=engine_args.get("max_model_len"))
        self.llm_engine = _Engine(model)

    def get_tokenizer(self):
        return _Tokenizer()

    def generate(self, prompts, params, use_tqdm=True):
        out = []
        for sp in params:
            assert sp.logprobs is None or sp.flat_logprobs, "log-probs requested as per-token dicts"
            rng = random.Random(sp.seed)
            out.append(_Request([_Out(i, "#### " + str(rng.randint(0, 9)), [1, 2], "stop") for i in range(sp.n)]))
        return out
'''


@pytest.fixture
def vllm_on_disk(tmp_path, monkeypatch):
    pkg = tmp_path / "fake_site" / "vllm"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text(FAKE_VLLM_PACKAGE)
    monkeypatch.syspath_prepend(str(tmp_path / "fake_site"))
    monkeypatch.delitem(sys.modules, "vllm")
    log = tmp_path / "engines.jsonl"
    monkeypatch.setenv("FAKE_VLLM_LOG", str(log))
    return log


def _events(log):
    import json

    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []


def _alive(pid: int) -> bool:
    """Running (an exited child not yet reaped is a zombie: 'Z' in /proc/<pid>/stat)."""
    try:
        return open(f"/proc/{pid}/stat").read().split(") ")[1].split()[0] != "Z"
    except OSError:
        return False


def test_sweep_starts_and_closes_one_engine_set_per_checkpoint(vllm_on_disk, toy_dataset, tmp_path):
    import json

    from mirage.evaluate import evaluate_run

    run = tmp_path / "run"
    for step in (2, 4, 6):
        hf = run / "checkpoints" / f"global_step_{step}" / "actor" / "huggingface"
        hf.mkdir(parents=True)
        (hf / "config.json").write_text("{}")
        (hf / "model.safetensors").write_bytes(b"")
    (run / "manifest.json").write_text(json.dumps({"model": "org/base", "task": toy_dataset}))
    table = evaluate_run(run, 2, backend="vllm", include_base=False, seed=1, batch_size=2, score_processes=0,
                         progress=False, sampler_kwargs={"gpus": ["0", "1"]})
    assert sorted(table["step"].unique()) == [2, 4, 6]
    events = _events(vllm_on_disk)
    # per checkpoint: two engines (one per GPU) start, both are shut down before the next checkpoint's start
    assert [e["event"] for e in events] == ["start", "start", "close", "close"] * 3
    for i, step in enumerate((2, 4, 6)):
        group = events[4 * i:4 * i + 4]
        assert {e["model"] for e in group} == {str((run / "checkpoints" / f"global_step_{step}" / "actor" /
                                                    "huggingface").resolve())}
        assert sorted(e["gpus"] for e in group[:2]) == ["0", "1"]
        assert {e["pid"] for e in group[:2]} == {e["pid"] for e in group[2:]}  # each closed by its own process
    assert not [e["pid"] for e in events if _alive(e["pid"])]  # every engine process has exited
    manifest = json.loads((run / "eval" / "step_4" / "eval_manifest.json").read_text())
    assert manifest["vllm"]["version"] == "0.0-fake" and manifest["vllm"]["seeding"] == "per-request"
    assert "batch-dependent GPU numerics" in manifest["vllm"]["batch_invariance"]
    assert "vllm_seeding" not in manifest["config"]  # the default is left out: older folders still match


def _barrier_sampler(folder, index, parties):
    """A sampler that is built only once ``parties`` engines are being built at the same time."""
    import time as _time
    from pathlib import Path as _Path

    folder = _Path(folder)
    (folder / f"started-{index}").write_text("")
    deadline = _time.time() + 60
    while len(list(folder.glob("started-*"))) < parties:
        if _time.time() > deadline:
            raise RuntimeError(f"engine {index}: the other engines never started (started one after another?)")
        _time.sleep(0.05)
    return make_fake_sampler("m")


def _indexed_barrier(folder, parties):
    return _barrier_sampler(folder, os.environ["CUDA_VISIBLE_DEVICES"], parties)


def test_engines_start_in_parallel(tmp_path):
    # each engine is built only while all three are being built: one after another would time out
    workers = par.start_workers(functools.partial(_indexed_barrier, str(tmp_path), 3),
                               [{"CUDA_VISIBLE_DEVICES": str(i)} for i in range(3)])
    try:
        assert sorted(p.name for p in tmp_path.glob("started-*")) == ["started-0", "started-1", "started-2"]
    finally:
        for w in workers:
            w.close()
    assert [w.process.exitcode for w in workers] == [0, 0, 0]


def test_a_failing_engine_closes_the_others():
    with pytest.raises(RuntimeError, match="engine could not start"):
        par.start_workers(FailingSampler, [{"CUDA_VISIBLE_DEVICES": "0"}, {"CUDA_VISIBLE_DEVICES": "1"}])


def test_batched_seeding_reaches_the_manifest_and_a_resume_must_match(toy_dataset, tmp_path):
    import json

    from mirage.evaluate import evaluate

    kwargs = dict(n=2, max_tokens=6, seed=1, batch_size=5, score_processes=0, progress=False)
    evaluate("fake-model", toy_dataset, sampler=vs.VLLMSampler("fake-model", seeding="batched"),
             out_dir=tmp_path / "b", **kwargs)
    manifest = json.loads((tmp_path / "b" / "eval_manifest.json").read_text())
    assert manifest["config"]["vllm_seeding"] == "batched" and manifest["vllm"]["seeding"] == "batched"
    with pytest.raises(ValueError, match="vllm_seeding"):  # per-request rows never mix with batched ones
        evaluate("fake-model", toy_dataset, sampler=vs.VLLMSampler("fake-model"), out_dir=tmp_path / "b",
                 restart=False, **{**kwargs, "n": 2})


# --- GPUs: within what the scheduler assigned ------------------------------------------------------
def test_gpu_count_takes_the_assigned_devices_not_0_to_n():
    assert par.assigned_gpus(2, {}) == ["0", "1"]
    assert par.assigned_gpus(2, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}) == ["4", "5"]
    assert par.assigned_gpus(["6", "7"], {"CUDA_VISIBLE_DEVICES": "4,5,6,7"}) == ["6", "7"]
    with pytest.raises(ValueError, match=r"--gpus 8: only 4 GPU\(s\) assigned .*CUDA_VISIBLE_DEVICES='4,5,6,7'"):
        par.assigned_gpus(8, {"CUDA_VISIBLE_DEVICES": "4,5,6,7"})
    with pytest.raises(ValueError, match="--gpus 0,1: 0,1 not assigned"):
        par.assigned_gpus(["0", "1"], {"CUDA_VISIBLE_DEVICES": "4,5"})
    with pytest.raises(ValueError, match="--gpus 2: only 0 GPU"):
        par.assigned_gpus(2, {"CUDA_VISIBLE_DEVICES": ""})


def test_eval_gpus_flag_pins_engines_to_the_assigned_devices(vllm_on_disk, monkeypatch):
    """`mirage eval --gpus 2` under SLURM (CUDA_VISIBLE_DEVICES=5,7) starts engines on 5 and 7, not 0 and 1."""
    import argparse

    from mirage.evaluate import cli
    from mirage.evaluate.scoring import make_sampler

    parser = argparse.ArgumentParser()
    cli._add_common(parser)
    args = parser.parse_args(["--backend", "vllm", "--gpus", "2"])
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    sampler = make_sampler("vllm", "org/base", gpus=args.gpus)
    sampler.close()
    assert sorted(e["gpus"] for e in _events(vllm_on_disk) if e["event"] == "start") == ["5", "7"]
    with pytest.raises(ValueError, match="--gpus 3: only 2 GPU"):
        make_sampler("vllm", "org/base", gpus=3)


def test_vllm_evaluation_sizes_the_engine_context_to_its_prompts(vllm_on_disk, tmp_path):
    """Unset, vLLM takes the model's whole context (131k for Llama-3.1): the evaluation asks for the longest
    prompt + max_tokens instead, within the model's positions, and an explicit --max-model-len wins."""
    from mirage.evaluate import evaluate
    from mirage.evaluate.core import vllm_context

    out = tmp_path / "e"
    evaluate("dial-60", "toy-math", 1, sampler="vllm", max_tokens=20, seed=0, batch_size=64, score_processes=0,
             progress=False, out_dir=out)
    [start] = [e for e in _events(vllm_on_disk) if e["event"] == "start"]
    assert start["max_model_len"] is not None and start["max_model_len"] < 160  # dial-60 has 160 positions
    assert vllm_context(70, 20, 160) == 90 and vllm_context(150, 48, 160) == 160
    evaluate("dial-60", "toy-math", 1, sampler="vllm", max_tokens=20, seed=0, batch_size=64, score_processes=0,
             progress=False, out_dir=tmp_path / "explicit", sampler_kwargs={"max_model_len": 150})
    assert [e["max_model_len"] for e in _events(vllm_on_disk) if e["event"] == "start"][-1] == 150


def test_a_verl_study_cell_evaluates_on_every_gpu_it_holds(vllm_on_disk, toy_dataset, tmp_path, monkeypatch):
    """A paper cell holds 8 GPUs (the recipe's n_gpus_per_node): its pass@k sweep starts one engine per GPU the
    scheduler assigned, not one engine on the first GPU."""
    import json

    from mirage.study import cell

    run = tmp_path / "run"
    hf = run / "checkpoints" / "global_step_2" / "actor" / "huggingface"
    hf.mkdir(parents=True)
    (hf / "config.json").write_text("{}")
    (hf / "model.safetensors").write_bytes(b"")
    (run / "manifest.json").write_text(json.dumps({"model": "org/base", "task": toy_dataset}))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,4,5,6")
    gpus = cell.cell_gpus("verl", "paper", {"n_gpus_per_node": 4, "tensor_parallel_size": 2})
    assert gpus == 4 and cell.cell_gpus("local", "testbed", None) == 0
    ev = {**cell.DEFAULT_EVAL, "n": 2, "max_tokens": 8, "checkpoints": "last"}
    cell.evaluate(run, ev, backend="verl", gpus=gpus)
    starts = [e for e in _events(vllm_on_disk) if e["event"] == "start"]
    assert sorted(e["gpus"] for e in starts) == ["3", "4", "5", "6"]
