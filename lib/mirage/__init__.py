"""mirage: does a surprising RLVR result hold for this model on this task?

Pipeline: data -> train -> evaluate -> analyse. See README.md.
"""

__version__ = "0.1.0"

# Before anything imports torch: the testbed computes with one CPU kernel path on every x86-64
# machine with AVX2, so its numbers are the same bits there (mirage.cpu_kernels).
from mirage.cpu_kernels import pin as _pin_cpu_kernels

_pin_cpu_kernels()
