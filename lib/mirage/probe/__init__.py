"""Probes of a base model: what it has seen, as opposed to what it can do.

    text.py           the problem statement, its cut at a fraction, exact match and ROUGE-L
    contamination.py  probe_contamination(): raw-prefix completion + truncated-problem accuracy,
                      resumable like an evaluation (``mirage probe contamination``)
    cli.py            ``mirage probe``
"""

from mirage.probe.contamination import ProbeSettings, probe_contamination, read_rows, summarise

__all__ = ["ProbeSettings", "probe_contamination", "read_rows", "summarise"]
