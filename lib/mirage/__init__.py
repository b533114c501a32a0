"""mirage: does a surprising RLVR result hold for this model on this task?

Pipeline: data -> train -> evaluate -> analyse. See README.md.
"""

__version__ = "0.1.0"
