"""Training: one RunConfig, two engines.

    from mirage.train.dispatch import run
    run(RunConfig(model="dial-90", task="toy-math", condition="nsr"))

``backend="local"``: the CPU testbed's GRPO engine (``engine.py`` computes a step,
``loop.py`` runs it: checkpoints, resume, logs); ``backend="verl"``: verl 0.9.1 on GPUs
(``verl/``); ``dispatch.run`` picks one by ``cfg.backend``. Both read the same condition, task and
recipe registries; dynamic sampling and response dropping are ``sampling.py``, which both call. This
package imports nothing, so that a module below the engines (``verl/command.py``, which ``mirage.doctor``
reads) does not pull them in.
"""
