"""One CPU kernel path for the testbed, so its numbers do not depend on which x86 CPU runs it.

torch picks its vectorised CPU kernels (softmax, norms, activations, sampling) by the CPU's
instruction set at the first operation: AVX-512 on this project's development machine, AVX2 on
many others. The two round differently in the last bits, which over a 40-step RL run changed one
sampled answer in 3,200 (testbed-quick, one-shot on dial-60 x toy-logic: pass@1 .6709 with
AVX-512, .6706 with AVX2). MKL's matrix products dispatch the same way on Intel CPUs.

``pin()`` runs when ``mirage`` is imported, before mirage imports torch, and pins both to the
AVX2 path on every x86-64 CPU that has AVX2 and FMA (Intel since 2013, AMD since 2015)::

    ATEN_CPU_CAPABILITY=avx2   torch's own kernels
    MKL_CBWR=AVX2              MKL (matrix products), conditional numerical reproducibility
    ONEDNN_MAX_CPU_ISA=AVX2    oneDNN (not on the testbed's fp32 path today; pinned so nothing escapes)

The variables are set in ``os.environ``, so every process mirage starts (study steps, papermill
kernels, scoring workers) inherits them. Elsewhere (ARM, a CPU without AVX2) nothing is set
and the numbers are those of that machine's kernels. ``MIRAGE_CPU_KERNELS=native`` leaves
torch's own choice (and any ``ATEN_CPU_CAPABILITY`` set by hand). On the development machine
(AMD EPYC, AVX-512) the pinned path costs nothing measurable (docs/study.md).

Only a process that imports torch and runs a torch operation BEFORE importing mirage escapes
the pin; ``capability()`` says what torch actually uses, and training and evaluation record it.
"""

from __future__ import annotations

import os
import platform
import sys
import warnings

MODE_ENV = "MIRAGE_CPU_KERNELS"
MODES = ("avx2", "native")
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2"}


def mode() -> str:
    """$MIRAGE_CPU_KERNELS: "avx2" (default) or "native"."""
    value = (os.environ.get(MODE_ENV) or "avx2").strip().lower()
    if value not in MODES:
        raise ValueError(f"${MODE_ENV}={os.environ.get(MODE_ENV)!r}: must be one of {', '.join(MODES)}")
    return value


def cpu_has_avx2(cpuinfo: str = "/proc/cpuinfo") -> bool:
    """True on an x86-64 CPU whose flags include avx2 and fma (what torch's AVX2 kernels need).
    False where it cannot tell (no /proc/cpuinfo): an AVX2 kernel on a CPU without it would crash."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return {"avx2", "fma"} <= flags
    except OSError:
        return False
    return False


def pin() -> dict[str, str]:
    """Set the pinned kernel path in ``os.environ`` (see the module docstring); returns what was set."""
    if mode() == "native" or not cpu_has_avx2():
        return {}
    os.environ.update(PINNED)
    if "torch" in sys.modules and capability() != "AVX2":  # torch ran an operation before mirage was imported
        warnings.warn(f"torch chose its {capability()} CPU kernels before mirage was imported; import mirage "
                      "first for the testbed's machine-independent numbers (mirage.cpu_kernels)", stacklevel=2)
    return dict(PINNED)


def capability() -> str:
    """The kernel set torch uses in this process ("AVX2", "AVX512", "DEFAULT", ...)."""
    import torch

    return str(torch.backends.cpu.get_cpu_capability())
