"""mirage doctor: each preflight check against a faked machine, and the verl dry run that prints them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from mirage import doctor
from mirage.doctor import Facts, Finding
from mirage.recipes import PAPER_RECIPE

SMI = """Mon Nov 30 10:00:00 2026
+-----------------------------------------------------------------------------------------+
| NVIDIA-SMI {driver}              Driver Version: {driver}      CUDA Version: {cuda}     |
|-----------------------------------------+------------------------+----------------------+
|   0  NVIDIA H100 80GB HBM3          On  |   00000000:18:00.0 Off |                    0 |
"""


def gpu_node(driver="580.65.06", cuda="13.0", torch_cuda="13.0", gpus=8, **kw) -> Facts:
    return Facts(nvidia_smi=SMI.format(driver=driver, cuda=cuda), torch_version="2.11.0", torch_cuda=torch_cuda,
                 gpus=gpus, **{"cpus": 96, "ray_cpus": 96.0, **kw})


def levels(findings):
    return [f.level for f in findings]


def test_finding_line_format():
    assert str(Finding("error", "x broke", "do y")) == "error: x broke -- fix: do y"
    assert str(Finding("ok", "fine")) == "ok: fine"
    with pytest.raises(ValueError, match="level"):
        Finding("fatal", "x")


def test_driver_strings():
    assert doctor.parse_nvidia_smi(SMI.format(driver="550.54.15", cuda="12.4")) == ("550.54.15", "12.4")
    assert doctor.parse_nvidia_smi("garbage") == (None, None)
    # torch 2.11 for CUDA 13 on an R550 driver (CUDA 12.4): CUDA cannot start
    [f] = doctor.check_driver(gpu_node(driver="550.54.15", cuda="12.4"))
    assert f.level == "error" and "550.54.15" in f.what and "CUDA 13.0" in f.what and "580.65.06" in f.fix
    [f] = doctor.check_driver(gpu_node())
    assert f.level == "ok" and "8 GPU(s)" in f.what
    # same major, older minor: minor-version compatibility, a warning
    [f] = doctor.check_driver(gpu_node(driver="550.54.15", cuda="12.4", torch_cuda="12.8"))
    assert f.level == "warn" and "minor-version" in f.what
    # no CUDA Version in the header: the driver version against the table
    [f] = doctor.check_driver(Facts(nvidia_smi="Driver Version: 535.104.05", torch_version="2.11.0",
                                    torch_cuda="13.0", gpus=1))
    assert f.level == "error"
    # a CPU build of torch on a GPU node
    [f] = doctor.check_driver(gpu_node(torch_cuda=None))
    assert f.level == "error" and "CPU build" in f.what


def test_cpu_machine_fails_nothing_only_a_gpu_decides():
    facts = Facts(torch_version="2.13.0+cpu", cpus=2, ray_cpus=2.0, env={"SLURM_CPUS_ON_NODE": "2"})
    findings = (doctor.check_driver(facts) + doctor.check_attention(facts, "sdpa")
                + doctor.check_resources(facts, n_gpus_per_node=8, nnodes=2))
    assert not doctor.errors(findings)
    assert "no GPU: GPU checks skipped" in str(findings[0])
    # and this very machine (no GPU here) probes to the same verdict
    real = doctor.probe(ray=False)
    if not real.has_gpu:
        assert not doctor.errors(doctor.check_driver(real) + doctor.check_resources(real, 8, 1))


def test_missing_flash_attn_switches_the_command_to_sdpa(tmp_path, monkeypatch):
    [f] = doctor.check_attention(gpu_node(), "sdpa")
    assert f.level == "warn" and "use_remove_padding=false" in f.what and "flash-attn" in f.fix
    [f] = doctor.check_attention(gpu_node(flash_attn_error="ImportError: undefined symbol"), "sdpa")
    assert f.level == "error"
    [f] = doctor.check_attention(gpu_node(flash_attn="2.8.3"), "flash_attention_2")
    assert f.level == "ok"

    import importlib.util

    from mirage.train.verl import command

    real_find_spec = importlib.util.find_spec

    def argv(flash: bool):
        monkeypatch.setattr(importlib.util, "find_spec",
                            lambda name, *a: object() if name == "flash_attn" and flash else real_find_spec(name, *a))
        return command.build_command("Qwen/Qwen2.5-7B", "math", "nsr", 0, tmp_path / "r", data_root=tmp_path)[1]

    without = argv(False)
    assert "+actor_rollout_ref.model.override_config.attn_implementation=sdpa" in without
    assert "actor_rollout_ref.model.use_remove_padding=false" in without
    with_flash = argv(True)
    assert "actor_rollout_ref.model.use_remove_padding=true" in with_flash
    assert not any("attn_implementation" in a for a in with_flash)


def test_slurm_allocation_with_too_few_cpus():
    need = doctor.cpus_needed(8)
    assert need == 3 * 8 + 16 + 1
    facts = gpu_node(env={"SLURM_CPUS_ON_NODE": "16", "SLURM_JOB_NUM_NODES": "1", "SLURM_GPUS_ON_NODE": "8"})
    gpus, cpus = doctor.check_resources(facts, n_gpus_per_node=8, nnodes=1)
    assert gpus.level == "ok"
    assert cpus.level == "error" and "hangs at the first reward" in cpus.what and f"--cpus-per-task={need}" in cpus.fix
    assert "SLURM 16" in cpus.what
    # enough CPUs in the allocation: fine; cores fewer than needed but Ray unconstrained: a warning only
    assert levels(doctor.check_resources(gpu_node(env={"SLURM_CPUS_ON_NODE": "64"}), 8, 1)) == ["ok", "ok"]
    assert levels(doctor.check_resources(gpu_node(cpus=8, ray_cpus=128.0), 8, 1)) == ["ok", "warn"]
    # Ray started with too few CPUs (ray start --num-cpus 8): an error too
    assert levels(doctor.check_resources(gpu_node(ray_cpus=8.0), 8, 1))[-1] == "error"
    # fewer GPUs or nodes than the run asks for
    found = doctor.check_resources(gpu_node(gpus=4, env={"SLURM_JOB_NUM_NODES": "1"}), 8, 2)
    assert levels(found)[:2] == ["error", "error"] and "--n-gpus-per-node 4" in found[1].fix


def _short_context_model(tmp_path: Path, positions: int = 4096) -> Path:
    model = tmp_path / "short-model"
    model.mkdir()
    (model / "config.json").write_text(json.dumps({"model_type": "qwen2", "max_position_embeddings": positions}))
    return model


def test_context_length_from_the_models_config(tmp_path):
    model = _short_context_model(tmp_path)
    [f] = doctor.check_context(str(model), PAPER_RECIPE)
    assert f.level == "error" and "4096 positions" in f.what and "10240" in f.what
    assert "--set max_response_length=2048" in f.fix and "--max-model-len 4096" in f.fix
    [f] = doctor.check_context(str(model), PAPER_RECIPE.replace(max_model_len=4096))
    assert f.level == "warn" and "capped at max_model_len 4096" in f.what
    [f] = doctor.check_context(str(model), PAPER_RECIPE.replace(max_model_len=8192))
    assert f.level == "error" and "--max-model-len 4096" in f.fix
    [f] = doctor.check_context(str(model), PAPER_RECIPE.replace(max_response_length=2048))
    assert f.level == "ok"
    [f] = doctor.check_context("dial-90", PAPER_RECIPE.replace(max_prompt_length=64, max_response_length=48))
    assert f.level == "ok" and "160 positions" in f.what  # a shipped testbed model
    [f] = doctor.check_context("nobody/not-a-cached-model", PAPER_RECIPE)
    assert f.level == "warn" and "not checked" in f.what


def test_shrunk_recipe_breaks_vllms_batching_limit():
    def cfg(tokens, seqs, chunked=True, max_len=None):
        return OmegaConf.create({"actor_rollout_ref": {"rollout": {
            "max_num_batched_tokens": tokens, "max_num_seqs": seqs, "enable_chunked_prefill": chunked,
            "max_model_len": max_len}}})

    [f] = doctor.check_vllm(cfg(64 + 48, 256))
    assert f.level == "error" and "max_num_seqs=112" in f.fix
    assert levels(doctor.check_vllm(cfg(10240, 256))) == ["ok"]
    assert levels(doctor.check_vllm(cfg(2048, 256, chunked=False, max_len=10240))) == ["warn"]


def test_overlong_prompts_counted_with_the_models_tokenizer(tmp_path):
    import pandas as pd

    tokenizer = doctor.load_tokenizer("dial-90")
    assert tokenizer is not None
    rows = pd.DataFrame({"prompt": [[{"role": "user", "content": "1+1"}], [{"role": "user", "content": "9" * 80}]]})
    rows.to_parquet(tmp_path / "toy.parquet")
    lengths = doctor.prompt_lengths(tmp_path / "toy.parquet", tokenizer)
    short, long = lengths
    assert long > short + 70
    [f] = doctor.check_prompts([tmp_path / "toy.parquet"], tokenizer, max_prompt_length=long - 1)
    assert f.level == "warn" and f"1 of 2 prompts are longer than max_prompt_length {long - 1}" in f.what
    assert f"--set max_prompt_length={long}" in f.fix
    assert levels(doctor.check_prompts([tmp_path / "toy.parquet"], tokenizer, long)) == ["ok"]
    assert levels(doctor.check_prompts([tmp_path / "toy.parquet"], None, 10)) == ["warn"]


@pytest.mark.verl
def test_dry_run_reports_the_context_conflict_and_the_explicit_cap(tmp_path, capsys):
    from mirage.cli import main

    model = _short_context_model(tmp_path)
    base = ["--debug", "train", "--backend", "verl", "--model", str(model), "--task", "math", "--condition", "nsr",
            "--run-dir", str(tmp_path / "run"), "--data-root", str(tmp_path / "data"), "--dry-run"]
    assert main(base) == 2
    out = capsys.readouterr().out
    assert "# error: the model has 4096 positions" in out and "--max-model-len 4096" in out
    assert "# preflight: 1 error(s)" in out
    assert "data.filter_overlong_prompts=true" in out.splitlines()[-2]
    assert main(base + ["--max-model-len", "4096"]) == 0
    out = capsys.readouterr().out
    assert "# warn: vLLM's context is capped at max_model_len 4096" in out
    assert "actor_rollout_ref.rollout.max_model_len=4096" in out.splitlines()[-1]


def test_doctor_cli_on_this_machine(capsys):
    from mirage.cli import main

    code = main(["doctor"])
    out = capsys.readouterr().out
    lines = out.strip().splitlines()
    assert all(line.split(":")[0] in ("ok", "warn", "error") for line in lines[:-1])
    assert lines[-1].endswith("warning(s)")
    assert code == (2 if " 0 error(s)" not in lines[-1] else 0)
    assert main(["doctor", "--model", "dial-90"]) == 2  # the run's three flags go together
    assert "go together" in capsys.readouterr().err


@pytest.mark.slow  # two launches, one with verl's plugin check in a fresh interpreter: ~40 s on 2 busy cores
@pytest.mark.verl
def test_train_stops_on_a_preflight_error_and_records_findings_when_skipped(tmp_path, capsys):
    from mirage.cli import main
    from mirage.tasks import get_task

    data = tmp_path / "data"
    (data / "verl").mkdir(parents=True)
    task = get_task("math")
    for name in (task.train, *task.evals):  # existence is all a launch checks before the doctor
        (data / "verl" / f"{name}.parquet").write_bytes(b"")
    model = _short_context_model(tmp_path)
    run_dir = tmp_path / "run"
    args = ["train", "--backend", "verl", "--model", str(model), "--task", "math", "--condition", "nsr",
            "--run-dir", str(run_dir), "--data-root", str(data), "--no-launch"]
    assert main(args) == 2
    captured = capsys.readouterr()
    assert "error: the model has 4096 positions" in captured.out
    assert "preflight (mirage doctor) found 1 error(s)" in captured.err and "--skip-preflight" in captured.err
    assert not run_dir.exists()
    assert main(args + ["--skip-preflight"]) == 0
    manifest = json.loads((run_dir / "manifest.json").read_text())
    assert any(line.startswith("error: the model has 4096 positions") for line in manifest["preflight"])
    assert (manifest["attn_implementation"], manifest["use_remove_padding"]) == ("sdpa", False)
    assert manifest["max_model_len"] == 2048 + 8192 and manifest["filter_overlong_prompts"] is True
    assert "max_model_len" not in manifest["recipe"]  # the default is left out of recorded recipes
