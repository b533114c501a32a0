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

from mirage.objectives import ESTIMATORS, POLICY_LOSSES, loss_terms

ENV_VAR = "VERL_USE_EXTERNAL_MODULES"
MODULE = "mirage.train.verl.plugin"


def _verl_policy_loss(clip: bool):
    """A verl policy-loss function computing ``mirage.objectives.loss_terms``, aggregated by verl's own agg_loss."""

    def policy_loss(old_log_prob, log_prob, advantages, response_mask, loss_agg_mode="token-mean", config=None,
                    rollout_is_weights=None):
        low = config.clip_ratio_low if config.clip_ratio_low is not None else config.clip_ratio
        high = config.clip_ratio_high if config.clip_ratio_high is not None else config.clip_ratio
        losses, metrics = loss_terms(old_log_prob, log_prob, advantages, response_mask, low, high,
                                     config.get("clip_ratio_c", 3.0), clip=clip)
        if rollout_is_weights is not None:
            losses = losses * rollout_is_weights
        return core_algos.agg_loss(loss_mat=losses, loss_mask=response_mask, loss_agg_mode=loss_agg_mode,
                                   **config.global_batch_info), metrics

    return policy_loss


_POLICY_FNS: dict[str, object] = {}  # verl name -> the function registered (one object per name: re-imports are no-ops)


def register() -> list[str]:
    """Register every mirage estimator and policy loss with verl (verl's own built-ins, grpo and rloo, stay
    verl's: ours are numerically identical); returns the verl names registered."""
    names = []
    for est in ESTIMATORS.values():
        if not est.verl_name.startswith("mirage_"):
            continue
        core_algos.register_adv_est(est.verl_name)(est.fn)
        names.append(est.verl_name)
    for loss in POLICY_LOSSES.values():
        fn = _POLICY_FNS.setdefault(loss.verl_name, _verl_policy_loss(loss.clip))
        core_algos.register_policy_loss(loss.verl_name)(fn)
        names.append(loss.verl_name)
    return names


def check_registered(names: list[str]) -> None:
    """Raise with a clear message unless every estimator / policy-loss name resolves in this process."""
    missing = []
    for name in names:
        try:
            if name in {loss.verl_name for loss in POLICY_LOSSES.values()}:
                core_algos.get_policy_loss_fn(name)
            else:
                core_algos.get_adv_estimator_fn(name)
        except (ValueError, NotImplementedError):
            missing.append(name)
    if missing:
        raise RuntimeError(
            f"verl cannot resolve advantage estimator(s) / policy loss(es) {missing} in process {os.getpid()}: the mirage plugin "
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
