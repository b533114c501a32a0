"""``mirage smoke``: the first thing to run on a GPU node (one GPU, no network, meant to take < 10 min).

1. Builds the smoke model: the shipped dial-90 testbed model widened from head_dim 16 to 32
   (vLLM's FlashAttention backend does not take 16) and cast to bf16. The widening is exact
   (``widen_heads``): each head's rotary pairs move to the new dims of the same frequency and
   the query is scaled by sqrt(32/16), so the model still solves toy-math (a random model would
   never be rewarded, and NSR's advantages would all be 0).
2. vLLM evaluation of it on toy-math (every eval problem, n = 8): rows complete, pass@1 > 0.3.
3. Two verl steps each of ground_truth, nsr and majority_vote on toy-math (1 GPU, the doctor first):
   every run finished; NSR's advantages (verl's own ``critic/advantages/max|min``) <= 0 with some
   < 0; each majority-vote score verl trained on equals the vote recomputed from the dumped
   outputs (``rollouts/N.jsonl``); ground truth's step-2 checkpoint loads in ``mirage eval --run-dir``.

``--dry-run`` (CPU; CI runs it) does everything short of launching: builds the model and checks
it against dial-90 and in transformers, composes and validates the three verl commands with
verl's own config, runs the doctor on them, and prints what the GPU run would do.
"""

from __future__ import annotations

import argparse
import json
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from mirage.cli import main as cli
from mirage.models import resolve_model
from mirage.rewards import compute_score
from mirage.rewards.group import majority_vote_rewards
from mirage.runs import RunConfig, read_manifest
from mirage.train.verl.launcher import launch

SOURCE_MODEL = "dial-90"
HEAD_DIM = 32
TASK = "toy-math"
CONDITIONS = ("ground_truth", "nsr", "majority_vote")
# the testbed's lengths and a small batch on one GPU; 2 updates per step (clipping can act)
RECIPE = {"total_steps": 2, "save_freq": 0, "val_freq": 2, "train_batch_size": 8, "rollout_n": 8,
          "ppo_mini_batch_size": 4, "lr": 1e-6, "max_prompt_length": 64, "max_response_length": 48,
          "n_gpus_per_node": 1, "nnodes": 1, "tensor_parallel_size": 1}
EXTRA = ("actor_rollout_ref.rollout.max_num_seqs=64",  # vLLM: max_num_batched_tokens (112) >= max_num_seqs
         "reward.num_workers=2",  # 2 x 2 scoring actors: the run needs 8 CPUs, not 20 (mirage doctor)
         "actor_rollout_ref.rollout.gpu_memory_utilization=0.4",
         "actor_rollout_ref.rollout.enforce_eager=true")  # no CUDA-graph capture: faster start
EVAL = {"n": 8, "max_tokens": 48, "seed": 0}
MIN_PASS_AT_1 = 0.3  # dial-90's pass@1 on toy-math at T = 1 is ~0.85; a broken path gives ~0

Log = Callable[[str], None]


@dataclass
class Check:
    name: str
    ok: bool
    detail: str = ""

    def __str__(self) -> str:
        return f"{'PASS' if self.ok else 'FAIL'} {self.name}" + (f": {self.detail}" if self.detail else "")


# --- the model ------------------------------------------------------------------------------------------
def widen_heads(state: dict, config, head_dim: int) -> dict:
    """A Llama state dict with every attention head widened from ``config.head_dim`` to ``head_dim`` dims,
    computing the same function.

    RoPE rotates dim i with i + d/2 at frequency theta^(-2i/d); with D = 2d, new dim 2i has the same
    frequency, so old dims (i, i + d/2) go to new dims (2i, 2i + D/2), the rest stay 0. Queries are
    scaled by sqrt(D/d) so that q.k / sqrt(D) equals the old q.k / sqrt(d). Values keep their first
    d dims; o_proj reads them from there.
    """
    import torch

    d, h, kv = config.head_dim, config.num_attention_heads, config.num_key_value_heads
    if head_dim != 2 * d:
        raise ValueError(f"widen_heads doubles head_dim ({d} -> {2 * d}), got {head_dim}")
    rope = getattr(config, "rope_parameters", None) or {"rope_type": "default"}
    if rope.get("rope_type", "default") != "default" or rope.get("partial_rotary_factor", 1) != 1:
        raise ValueError(f"widen_heads needs plain full RoPE, the model has {rope}")
    rotary = [2 * i for i in range(d // 2)] + [2 * i + head_dim // 2 for i in range(d // 2)]

    def rows(w, heads, index, scale=1.0):
        old = w.reshape(heads, d, -1)
        new = torch.zeros(heads, head_dim, old.shape[-1], dtype=w.dtype)
        new[:, index] = old * scale
        return new.reshape(heads * head_dim, -1)

    out = {}
    for name, w in state.items():
        if name.endswith("q_proj.weight"):
            out[name] = rows(w, h, rotary, math.sqrt(head_dim / d))
        elif name.endswith("k_proj.weight"):
            out[name] = rows(w, kv, rotary)
        elif name.endswith("v_proj.weight"):
            out[name] = rows(w, kv, list(range(d)))
        elif name.endswith("o_proj.weight"):
            out[name] = rows(w.T.contiguous(), h, list(range(d))).T.contiguous()
        elif name.endswith(("q_proj.bias", "k_proj.bias", "v_proj.bias")):
            raise ValueError(f"widen_heads: attention biases are not handled ({name})")
        else:
            out[name] = w
    return out


def build_model(out: Path, source: str = SOURCE_MODEL) -> tuple[Path, list[Check]]:
    """The smoke model in ``out`` (bf16, head_dim 32) from the shipped ``source``, with its checks."""
    import shutil

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = Path(resolve_model(source))
    old = AutoModelForCausalLM.from_pretrained(src, dtype=torch.float32).eval()
    config = old.config.__class__.from_dict(old.config.to_dict())
    config.head_dim = HEAD_DIM
    wide = AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()
    wide.load_state_dict(widen_heads(old.state_dict(), old.config, HEAD_DIM), strict=True)
    tokenizer = AutoTokenizer.from_pretrained(src)
    ids = torch.tensor([tokenizer.encode("<think>3+4*2=11</think> <answer>11</answer> 5*6-7")] * 2)
    with torch.no_grad():
        diff = (old(ids).logits - wide(ids).logits).abs().max().item()
    checks = [Check(f"head_dim {old.config.head_dim} -> {HEAD_DIM} computes the same function (fp32)", diff < 1e-4,
                    f"max |logit difference| {diff:.2e}")]
    out.mkdir(parents=True, exist_ok=True)
    wide.to(torch.bfloat16).save_pretrained(out)
    tokenizer.save_pretrained(out)
    for name in ("generation_config.json", "chat_template.jinja"):
        if (src / name).exists():
            shutil.copy(src / name, out / name)
    (out / "SMOKE.md").write_text(f"Built by `mirage smoke` from {source} ({src}): heads widened to {HEAD_DIM} "
                                  "dims (exact), bf16. For the GPU smoke test only.\n")
    back = AutoModelForCausalLM.from_pretrained(out)
    with torch.no_grad():
        bf16 = back(ids).logits.float()
    checks.append(Check("transformers loads it as bf16 with head_dim 32",
                        back.dtype == torch.bfloat16 and back.config.head_dim == HEAD_DIM,
                        f"dtype {back.dtype}, head_dim {back.config.head_dim}, "
                        f"{sum(p.numel() for p in back.parameters()):,} parameters"))
    same = (bf16.argmax(-1) == old(ids).logits.argmax(-1)).float().mean().item()
    checks.append(Check("bf16 keeps the model's greedy tokens", same >= 0.9, f"{same:.0%} of positions agree"))
    return out, checks


# --- the runs -------------------------------------------------------------------------------------------
def run_configs(model: Path, out: Path):
    return [RunConfig(model=str(model), task=TASK, condition=c, backend="verl", run_dir=str(out / "runs" / c),
                      overrides={**RECIPE, "save_freq": 2 if c == "ground_truth" else 0}, extra=EXTRA)
            for c in CONDITIONS]


def read_metrics(run_dir: Path) -> list[dict]:
    rows = []
    for path in sorted((run_dir / "logs").glob("metrics-*.jsonl")):
        rows += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return rows


def check_nsr(run_dir: Path) -> Check:
    """verl's own advantage metrics: NSR keeps only negative advantages."""
    steps = [r for r in read_metrics(run_dir) if "critic/advantages/max" in r.get("data", r)]
    data = [r.get("data", r) for r in steps]
    if not data:
        return Check("nsr: advantages <= 0, some < 0", False, f"no critic/advantages metrics in {run_dir}/logs")
    top, low = max(d["critic/advantages/max"] for d in data), min(d["critic/advantages/min"] for d in data)
    return Check("nsr: advantages <= 0, some < 0", top <= 0 < -low, f"max {top:.4g}, min {low:.4g} over "
                                                                       f"{len(data)} steps")


def check_majority_vote(run_dir: Path) -> Check:
    """Every dumped training score equals the majority vote recomputed from the dumped outputs."""
    from collections import defaultdict

    rows = [json.loads(line) for p in sorted((run_dir / "rollouts").glob("*.jsonl"))
            for line in p.read_text().splitlines() if line.strip()]
    groups = defaultdict(list)
    for r in rows:
        groups[r["uid"].rsplit("_", 2)[0], r["step"]].append(r)
    bad = 0
    for group in groups.values():
        scored = [compute_score(TASK, r["output"], r["gts"], variant="ground_truth") for r in group]
        votes = majority_vote_rewards([s.get("pred") for s in scored], [s["format"] for s in scored], TASK)
        bad += sum(abs(v - float(r["score"])) > 1e-6 for v, r in zip(votes, group))
    return Check("majority_vote: trained scores = votes recomputed from the dumped outputs", bool(rows) and not bad,
                 f"{len(rows)} responses in {len(groups)} groups, {bad} differ")


def gpu_run(out: Path, log: Log = print) -> int:
    from mirage.evaluate import evaluate  # why: pandas, which importing mirage.smoke does not need

    t0 = time.time()
    model, checks = build_model(out / "model")
    for c in checks:
        log(str(c))
    table = evaluate(str(model), TASK, EVAL["n"], sampler="vllm", max_tokens=EVAL["max_tokens"], seed=EVAL["seed"],
                     out_dir=out / "eval-base", progress=False, restart=True,
                     sampler_kwargs={"dtype": "bfloat16", "gpu_memory_utilization": 0.4, "enforce_eager": True})
    p1 = float(table.loc[table.k == 1, "pass_at_k"].mean())
    checks.append(Check("vLLM evaluation of the bf16 model", p1 > MIN_PASS_AT_1, f"pass@1 {p1:.3f} "
                                                                                  f"(> {MIN_PASS_AT_1} expected)"))
    log(str(checks[-1]))
    for cfg in run_configs(model, out):
        t = time.time()
        code = launch(cfg)
        status = read_manifest(cfg.run_dir).get("status")
        checks.append(Check(f"verl 2 steps of {cfg.condition}", code == 0 and status == "finished",
                            f"exit {code}, status {status}, {time.time() - t:.0f} s"))
        log(str(checks[-1]))
    runs = out / "runs"
    checks += [check_nsr(runs / "nsr"), check_majority_vote(runs / "majority_vote")]
    code = cli(["eval", "--backend", "vllm", "--run-dir", str(runs / "ground_truth"), "--n", "4", "--no-base",
                "--max-tokens", "48", "--no-progress"])
    checks.append(Check("mirage eval --run-dir loads the step-2 checkpoint", code == 0 and
                        (runs / "ground_truth" / "eval" / "step_2" / "passk.parquet").exists(), f"exit {code}"))
    for c in checks[-3:]:
        log(str(c))
    failed = [c for c in checks if not c.ok]
    log(f"smoke: {len(checks) - len(failed)}/{len(checks)} checks passed in {time.time() - t0:.0f} s; {out}")
    return 1 if failed else 0


def dry_run(out: Path, log: Log = print) -> int:
    """Everything short of launching (CPU): the model, the three verl commands composed, validated, doctored."""
    t0 = time.time()
    model, checks = build_model(out / "model")
    for cfg in run_configs(model, out):
        lines: list[str] = []
        code = launch(cfg, dry_run=True, out=lines.append)
        problems = [line for line in lines if line.startswith(("# error", "# preflight"))]
        checks.append(Check(f"verl command of {cfg.condition} composes, validates and passes the doctor",
                            code == 0 and not problems, "; ".join(problems) or f"{len(lines[-1].split())} words"))
        log(f"\n## {cfg.condition} (run dir {cfg.run_dir})")
        for line in lines:
            log(line)
    log("\n## the GPU run would then")
    log(f"  evaluate {model} on {TASK} with vLLM (n={EVAL['n']}, {EVAL['max_tokens']} tokens): pass@1 > "
        f"{MIN_PASS_AT_1}")
    log(f"  launch each command above (2 steps on 1 GPU) and check: every run finished; nsr's "
        "critic/advantages/max <= 0 < -min; majority-vote scores = votes recomputed from rollouts/*.jsonl; "
        "`mirage eval --backend vllm --run-dir .../ground_truth --no-base` loads global_step_2")
    log("")
    for c in checks:
        log(str(c))
    failed = [c for c in checks if not c.ok]
    log(f"smoke --dry-run: {len(checks) - len(failed)}/{len(checks)} checks passed in {time.time() - t0:.0f} s "
        "(nothing launched: no GPU run is verified by this)")
    return 1 if failed else 0


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", default="runs/smoke", help="where the model, evaluation and runs go (runs/smoke)")
    parser.add_argument("--dry-run", action="store_true",
                        help="CPU: build and check everything short of launching, print what the GPU run would do")
    parser.set_defaults(func=main)


def check_gpu_stack() -> None:
    """The GPU run needs vLLM and verl: an ImportError saying how to install them, before anything is built."""
    import importlib.util

    missing = [name for name in ("vllm", "verl") if importlib.util.find_spec(name) is None]
    if missing:
        raise ImportError(f"mirage smoke needs {' and '.join(missing)} (GPU node): pip install -e \".[gpu]\" in the "
                          "checkout; `mirage smoke --dry-run` checks everything short of launching on a CPU")


def main(args: argparse.Namespace) -> int:
    out = Path(args.out).resolve()
    if not args.dry_run:
        check_gpu_stack()
    return dry_run(out) if args.dry_run else gpu_run(out)
