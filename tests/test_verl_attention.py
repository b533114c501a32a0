"""The actor's attention is decided on the node that trains: command.sh asks mirage.train.verl.attention
there, and the padded (no flash-attn) case trains fixed, small micro-batches that verl accepts."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

from mirage.recipes import PAPER_RECIPE
from mirage.train.verl import attention as att
from mirage.train.verl import command as vb

pytestmark = pytest.mark.verl


def test_overrides_per_attention_and_the_reason():
    flash = att.attention_overrides(att.FLASH_ATTENTION)
    assert "actor_rollout_ref.model.use_remove_padding=true" in flash and not any("attn_impl" in o for o in flash)
    padded = att.attention_overrides("sdpa")
    assert "+actor_rollout_ref.model.override_config.attn_implementation=sdpa" in padded
    assert "actor_rollout_ref.actor.use_dynamic_bsz=false" in padded
    assert "actor_rollout_ref.actor.ppo_micro_batch_size_per_gpu=1" in padded
    assert "sdpa" in att.explain("sdpa") and "not importable" in att.explain("sdpa")


@pytest.mark.parametrize("attention", [att.FLASH_ATTENTION, "sdpa"])
def test_both_attentions_compose_and_pass_verls_validation(tmp_path, attention):
    _, argv = vb.build_command("Qwen/Qwen2.5-7B", "math", "nsr", 0, tmp_path / "r", PAPER_RECIPE,
                               data_root=tmp_path, attention=attention)
    cfg = vb.compose_config(vb.overrides_of(argv))
    vb.validate(cfg)
    actor = cfg.actor_rollout_ref.actor
    assert actor.use_dynamic_bsz is (attention == att.FLASH_ATTENTION)
    if attention == "sdpa":  # the padded tensor is one sequence: bounded by prompt + response
        assert (actor.ppo_micro_batch_size_per_gpu, cfg.actor_rollout_ref.rollout.log_prob_micro_batch_size_per_gpu,
                cfg.actor_rollout_ref.rollout.log_prob_use_dynamic_bsz) == (1, 1, False)


def test_command_sh_decides_the_attention_where_it_runs(tmp_path, monkeypatch, capsys):
    """Written on a login node with flash-attn, run on a node without it: the script must train with sdpa."""
    from mirage.cli import main
    from mirage.tasks import get_task

    data = tmp_path / "data"
    (data / "verl").mkdir(parents=True)
    task = get_task("math")
    for name in (task.train, *task.evals):
        (data / "verl" / f"{name}.parquet").write_bytes(b"")
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",  # the login node has flash-attn
                        lambda name, *a: object() if name == "flash_attn" else real_find_spec(name, *a))
    run_dir = tmp_path / "run"
    assert main(["train", "--backend", "verl", "--model", "Qwen/Qwen2.5-7B", "--task", "math", "--condition", "nsr",
                 "--run-dir", str(run_dir), "--data-root", str(data), "--no-launch", "--skip-preflight"]) == 0
    assert "attention: flash_attention_2" in capsys.readouterr().out
    monkeypatch.undo()
    script = (run_dir / "command.sh").read_text()
    assert "use_remove_padding" not in script and '"${ATTENTION[@]}"' in script
    assert subprocess.run(["bash", "-n", str(run_dir / "command.sh")]).returncode == 0
    lines = script.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("ATTENTION_ARGS="))
    probe = "\n".join(["set -euo pipefail", *lines[start:start + 2], 'printf "%s\\n" "${ATTENTION[@]}"'])
    done = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, check=True)
    here = att.attention_implementation()  # this test node: flash-attn is not installed in the CPU environment
    assert done.stdout.split() == att.attention_overrides(here)
    assert f"attention: {here}" in done.stderr
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert manifest["attn_implementation"] == "flash_attention_2"  # what the writing node decided, recorded


def test_attention_module_prints_one_override_per_line():
    done = subprocess.run([sys.executable, "-m", "mirage.train.verl.attention", "--attention", "sdpa"],
                          capture_output=True, text=True, check=True)
    assert done.stdout.split("\n")[:-1] == att.attention_overrides("sdpa")
