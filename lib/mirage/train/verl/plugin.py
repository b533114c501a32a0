"""Registers mirage's advantage estimators with verl 0.9.1, without forking it.

verl imports every module named in ``VERL_USE_EXTERNAL_MODULES`` at ``import verl``
time, in every process (driver, TaskRunner, Ray workers). Pointing it at this
module makes each mirage estimator resolvable by ``algorithm.adv_estimator=<verl_name>``.
The registered functions are the very ones in ``mirage.objectives`` (the CPU
testbed calls them too), never copies. Importing this module twice, or loading it
by path under another module name, is harmless: re-registering the same function
is a no-op for verl.

A plugin that fails to load must never go unnoticed, so there is an explicit
check too, for a fresh interpreter with the job's environment:

    VERL_USE_EXTERNAL_MODULES=mirage.train.verl.plugin python -m mirage.train.verl.plugin --check mirage_masked_nsr
"""

from __future__ import annotations

import argparse
import os
import sys

from verl.trainer.ppo import core_algos

from mirage.objectives import ESTIMATORS

ENV_VAR = "VERL_USE_EXTERNAL_MODULES"
MODULE = "mirage.train.verl.plugin"


def register() -> list[str]:
    """Register every mirage estimator verl does not already have; returns their verl names."""
    names = []
    for est in ESTIMATORS.values():
        if est.verl_name == "grpo":  # verl's own built-in, numerically identical
            continue
        core_algos.register_adv_est(est.verl_name)(est.fn)
        names.append(est.verl_name)
    return names


def check_registered(names: list[str]) -> None:
    """Raise with a clear message unless every estimator name resolves in this process."""
    missing = []
    for name in names:
        try:
            core_algos.get_adv_estimator_fn(name)
        except ValueError:
            missing.append(name)
    if missing:
        raise RuntimeError(
            f"verl cannot resolve advantage estimator(s) {missing} in process {os.getpid()}: the mirage plugin "
            f"was not loaded. Set {ENV_VAR}={MODULE} (and pass it to Ray workers via "
            f"+ray_kwargs.ray_init.runtime_env.env_vars.{ENV_VAR}); {ENV_VAR} is now "
            f"{os.environ.get(ENV_VAR)!r}.")


REGISTERED = register()


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="check, in a fresh interpreter, that verl loads mirage's plugin "
                                                 "from the environment and finds everything the job names")
    parser.add_argument("--check", nargs="*", default=None, metavar="NAME",
                        help="verl estimator names that must resolve (default: all of mirage's)")
    parser.add_argument("--load", action="append", default=[], metavar="PATH:NAME",
                        help="an object verl will load by path, e.g. pkg://mirage.rewards:compute_score")
    args = parser.parse_args(argv)
    # python -m ran this file as __main__; the module of the same name exists only if
    # ``import verl`` (above) loaded it from the environment, as verl's workers will.
    if MODULE not in sys.modules:
        print(f"error: `import verl` did not load {MODULE}: {ENV_VAR}={os.environ.get(ENV_VAR)!r}", file=sys.stderr)
        return 1
    names = REGISTERED if args.check is None else args.check
    try:
        check_registered(names)
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    from verl.utils.import_utils import load_extern_object

    for target in args.load:
        path, _, name = target.rpartition(":")
        load_extern_object(path, name)  # raises with verl's own message if it cannot
    print(f"ok: verl resolves {', '.join(names) or '(none)'}" + (f"; loaded {', '.join(args.load)}" if args.load else ""))
    return 0


if __name__ == "__main__":
    sys.exit(_main())
