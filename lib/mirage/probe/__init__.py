"""Probes of a base model: what it has seen, as opposed to what it can do.

    text.py           the problem statement, its cut at a fraction, exact match and ROUGE-L
    contamination.py  probe_contamination(): raw-prefix completion + truncated-problem accuracy,
                      resumable like an evaluation (``mirage probe contamination``)
    forced.py         probe_forced(): accuracy when the scratchpad starts on the correct procedure
                      (testbed tasks; ``mirage probe forced``)
    cli.py            ``mirage probe``
"""

from mirage.probe.contamination import ProbeSettings, probe_contamination, read_rows, summarise
from mirage.probe.forced import ForcedSettings, probe_forced

__all__ = ["ProbeSettings", "probe_contamination", "read_rows", "summarise", "ForcedSettings", "probe_forced"]
