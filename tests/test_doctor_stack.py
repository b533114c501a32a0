"""mirage doctor's stack checks (vLLM build, bf16 architecture, /dev/shm, TP vs GPUs, offline model, disk),
each against a faked node."""

from __future__ import annotations



from mirage.doctor import stack
from mirage.doctor.stack import StackFacts

QWEN_7B = {"hidden_size": 3584, "num_hidden_layers": 28, "vocab_size": 152064, "intermediate_size": 18944,
           "num_attention_heads": 28, "num_key_value_heads": 4, "tie_word_embeddings": False}


def test_vllm_missing_broken_or_unpinned():
    assert stack.check_vllm_install(StackFacts(), has_gpu=True)[0].level == "error"
    assert stack.check_vllm_install(StackFacts(), has_gpu=False)[0].level == "ok"  # a CPU machine needs none
    broken = stack.check_vllm_install(StackFacts(vllm_error="ImportError: libcudart.so.13"), has_gpu=True)[0]
    assert broken.level == "error" and "libcudart.so.13" in broken.what
    other = stack.check_vllm_install(StackFacts(vllm_version="0.11.0"), has_gpu=True)[0]
    assert other.level == "warn" and "pip install vllm==0.24.0" in other.fix
    assert stack.check_vllm_install(StackFacts(vllm_version="0.24.0"), has_gpu=True)[0].level == "ok"


def test_bf16_needs_ampere():
    v100 = stack.check_gpu_arch(StackFacts(capabilities=[(7, 0)] * 2, gpu_names=["Tesla V100"] * 2))
    assert [f.level for f in v100] == ["error"] and "Tesla V100 (sm70)" in v100[0].what
    assert stack.check_gpu_arch(StackFacts(capabilities=[(9, 0)], gpu_names=["H100"]))[0].level == "ok"
    assert stack.check_gpu_arch(StackFacts(capabilities=[(7, 5)]), dtype="float16") == []


def test_small_dev_shm_warns_for_ray():
    found = stack.check_shm(StackFacts(shm_bytes=64 << 20), has_gpu=True)
    assert found[0].level == "warn" and "0.06 GiB" in found[0].what and "--shm-size" in found[0].fix
    assert stack.check_shm(StackFacts(shm_bytes=64 << 30), has_gpu=True)[0].level == "ok"
    assert stack.check_shm(StackFacts(shm_bytes=64 << 20), has_gpu=False) == []


def test_rollout_tp_larger_than_visible_gpus_and_its_fix():
    found = stack.check_tp_visible(4, 2, has_gpu=True)
    assert found[0].level == "error" and found[0].fix.strip() == "--set tensor_parallel_size=2"
    assert stack.check_tp_visible(4, 8, has_gpu=True)[0].level == "ok"
    assert stack.check_tp_visible(4, 0, has_gpu=False) == []


def test_offline_node_without_the_model():
    env = {"HF_HUB_OFFLINE": "1"}
    assert stack.check_offline_model("Qwen/Qwen2.5-7B", env, found=False)[0].level == "error"
    assert stack.check_offline_model("Qwen/Qwen2.5-7B", env, found=True) == []
    assert stack.check_offline_model("Qwen/Qwen2.5-7B", {}, found=False) == []


def test_checkpoint_size_is_fp32_sized(tmp_path, monkeypatch):
    params = stack.parameter_count(QWEN_7B)
    assert 7.0e9 < params < 8.0e9  # Qwen2.5-7B: 7.6 B
    assert 110e9 < stack.checkpoint_bytes(QWEN_7B) < 130e9  # ~16 bytes/param, not the bf16 15 GB of HF weights
    assert stack.parameter_count({"hidden_size": 8}) is None

    class Usage:
        def __init__(self, free):
            self.free = free

    monkeypatch.setattr(stack.shutil, "disk_usage", lambda p: Usage(50e9))
    run = tmp_path / "not" / "yet" / "made"
    assert stack.check_disk(run, QWEN_7B, 6)[0].level == "error"  # not even one checkpoint fits
    monkeypatch.setattr(stack.shutil, "disk_usage", lambda p: Usage(300e9))
    warn = stack.check_disk(run, QWEN_7B, 6)[0]
    assert warn.level == "warn" and "6 checkpoint(s)" in warn.what and str(tmp_path) in warn.what
    monkeypatch.setattr(stack.shutil, "disk_usage", lambda p: Usage(1e12))
    assert stack.check_disk(run, QWEN_7B, 6)[0].level == "ok"
    assert not run.exists()


def test_check_run_includes_the_stack_for_an_offline_node(tmp_path, monkeypatch):
    from mirage import doctor
    from mirage.runs import RunConfig

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    cfg = RunConfig(model="org/not-cached", task="math", condition="random", backend="verl",
                    run_dir=str(tmp_path / "run"))
    found = doctor.check_run(cfg, doctor.Facts(), count_prompts=False, data=False,
                             stack=StackFacts(env={"HF_HUB_OFFLINE": "1"}))
    assert any(f.level == "error" and "org/not-cached is neither a local folder" in f.what for f in found)


def test_vllm_cuda_build_read_without_importing_vllm(tmp_path):
    assert stack.vllm_cuda_build("0.24.0+cu128", []) == "12"
    assert stack.vllm_cuda_build("0.24.0+cu130", []) == "13"
    ext = tmp_path / "_C.abi3.so"
    ext.write_bytes(b"\x7fELF" + b"\0" * 64 + b"libtorch.so\0libcudart.so.13\0libc.so.6\0")
    other = tmp_path / "_moe_C.abi3.so"
    other.write_bytes(b"\x7fELF no cuda runtime named here")
    assert stack.vllm_cuda_build("0.24.0", [other, ext]) == "13"  # PyPI's build carries no local tag
    assert stack.vllm_cuda_build("0.24.0", [other]) is None
    assert stack.vllm_cuda_build(None, [tmp_path / "missing.so"]) is None


def test_vllm_cuda_must_match_torch_and_driver():
    """The R535/R550 trap: a CUDA 12 torch over the gpu extra's CUDA 13 vLLM passes the driver check but vLLM
    cannot load its kernels; the doctor names the pair to install."""
    cu13 = StackFacts(vllm_version="0.24.0", vllm_cuda="13")
    mixed = stack.check_vllm_cuda(cu13, torch_cuda="12.8", driver_cuda="12.2")
    assert [f.level for f in mixed] == ["error"] and "CUDA 13" in mixed[0].what and "12.8" in mixed[0].what
    assert "cu128" in mixed[0].fix and "R535/R550" in mixed[0].fix
    old_driver = stack.check_vllm_cuda(cu13, torch_cuda="13.0", driver_cuda="12.4")
    assert [f.level for f in old_driver] == ["error"] and "up to 12.4" in old_driver[0].what
    matched = StackFacts(vllm_version="0.24.0+cu128", vllm_cuda="12")
    assert stack.check_vllm_cuda(matched, torch_cuda="12.8", driver_cuda="12.2")[0].level == "ok"
    assert stack.check_vllm_cuda(cu13, torch_cuda="13.0", driver_cuda="13.0")[0].level == "ok"
    assert stack.check_vllm_cuda(StackFacts(), torch_cuda="12.8", driver_cuda="12.2") == []  # no vLLM: nothing to say


def test_check_stack_reports_the_vllm_cuda_mismatch(tmp_path):
    from mirage.doctor.machine import Facts
    from mirage.doctor.run import check_stack
    from mirage.recipes import RECIPES

    smi = "| NVIDIA-SMI 535.183.01   Driver Version: 535.183.01   CUDA Version: 12.2 |"
    facts = Facts(nvidia_smi=smi, torch_version="2.11.0+cu128", torch_cuda="12.8", gpus=1)
    found = check_stack(StackFacts(vllm_version="0.24.0", vllm_cuda="13", shm_bytes=64 << 30), facts,
                        RECIPES["testbed"], "dial-30", tmp_path)
    assert any(f.level == "error" and "vLLM's kernels are built for CUDA 13" in f.what for f in found)
