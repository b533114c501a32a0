"""The clipping-bias mechanism in its smallest form: a bandit trained on coin-flip rewards.

A softmax policy over a few arms (one favoured by the base policy) is trained with
random rewards (a fair coin per sample, independent of the arm) through mirage's own
objective: the condition's group advantages (``mirage.objectives`` estimators) and the
recipe's policy loss (clipped PPO or the no-clip control), with several optimizer
updates per rollout, as the random-reward papers ran it. With no signal in the
reward, any systematic drift of the policy comes from the objective itself: PPO's
ratio clipping treats the favoured and the rare arms differently (a rare arm's ratio
moves more per update and is clipped sooner), the published explanation of why
random reward "helps" an already aligned model.

``simulate_bandit`` runs many seeds at once (a batch dimension; every seed has its
own parameters and optimizer state) and returns each seed's trajectory of p(favoured arm).

The defaults are the regime where the bias is visible: plain SGD, 64 updates per rollout
(8 mini-batches x 8 epochs) at lr 0.04, so that clipping acts on ~3.5% of the
sample-updates; 100 rollouts, 400 seeds. Measured there over three base seeds
(docs/science.md): median p(favoured) 0.70 -> 0.84-0.87 with eps 0.2 (the mean falls to
0.62-0.66), 0.78-0.79 with eps 0.1, 0.52-0.63 with clip-higher (0.2/0.28), 0.54-0.62 without
clipping, 0.70 on-policy (one update: the ratio is 1). With less saturation (32 updates at
lr 0.05) the smaller eps shifts MORE, not less: the published "smaller eps, less skew"
holds only when clipping acts on many updates.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from mirage.objectives import POLICY_LOSSES, get_estimator, loss_terms


@dataclass(frozen=True)
class BanditSettings:
    p_favoured: float = 0.7  # the base policy's probability of the favoured arm (arm 0)
    arms: int = 2
    group: int = 16  # samples per rollout (one prompt's group)
    mini_batches: int = 8  # optimizer updates per epoch over the rollout
    epochs: int = 8  # passes over the rollout (updates per rollout = mini_batches x epochs)
    steps: int = 100  # rollouts
    lr: float = 0.04
    optimizer: str = "sgd"  # "sgd" or "adam" (the recipe's; it rescales every step, which blurs the mechanism)
    clip_ratio_low: float = 0.2
    clip_ratio_high: float = 0.2
    policy_loss: str = "vanilla"  # a mirage.objectives.POLICY_LOSSES name
    estimator: str = "grpo"  # a mirage.objectives.ESTIMATORS name
    p_reward: float = 0.5  # the coin's probability of reward 1
    seeds: int = 400
    seed: int = 0

    def __post_init__(self):
        if not 0 < self.p_favoured < 1 or self.arms < 2 or self.group < 2 or not 1 <= self.mini_batches <= self.group:
            raise ValueError(f"bad bandit settings: {self}")
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")

    @property
    def updates_per_rollout(self) -> int:
        return self.mini_batches * self.epochs


def simulate_bandit(settings: BanditSettings, record_every: int = 10) -> dict:
    """Train ``settings.seeds`` independent bandit policies on coin-flip rewards.

    Returns {"steps": [...], "p_favoured": array (seeds, len(steps)), "clipfrac": array (seeds,)
    mean clipped share per update, "settings": dict}. Deterministic in ``settings.seed``.
    """
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tensors of a few hundred numbers: extra threads only contend (10x slower under load)
    try:
        return _simulate(settings, record_every)
    finally:
        torch.set_num_threads(threads)


def _simulate(settings: BanditSettings, record_every: int) -> dict:
    import torch

    s = settings
    S, G = s.seeds, s.group
    gen = torch.Generator().manual_seed(s.seed)
    rest = (1 - s.p_favoured) / (s.arms - 1)
    base = torch.log(torch.tensor([s.p_favoured] + [rest] * (s.arms - 1), dtype=torch.float64))
    logits = base.repeat(S, 1).clone().requires_grad_(True)
    opt = torch.optim.Adam([logits], lr=s.lr) if s.optimizer == "adam" else torch.optim.SGD([logits], lr=s.lr)
    estimator, clip = get_estimator(s.estimator), POLICY_LOSSES[s.policy_loss].clip
    index = np.repeat(np.arange(S), G)  # one group per seed
    ones = torch.ones(S * G, 1, dtype=torch.float64)
    steps, traj, clipped = [0], [torch.softmax(logits, -1)[:, 0].detach().numpy().copy()], np.zeros(S)
    for step in range(1, s.steps + 1):
        with torch.no_grad():
            probs = torch.softmax(logits, -1)
            acts = torch.multinomial(probs, G, replacement=True, generator=gen)  # (S, G)
            reward = (torch.rand(S, G, generator=gen, dtype=torch.float64) < s.p_reward).double()
            old = torch.log(probs).gather(1, acts)
            adv, _ = estimator(reward.reshape(-1, 1), ones, index)
            adv = adv.reshape(S, G)
        for _ in range(s.epochs):
            for cols in torch.arange(G).chunk(s.mini_batches):
                logp = torch.log_softmax(logits, -1).gather(1, acts[:, cols])
                losses, _ = loss_terms(old[:, cols], logp, adv[:, cols], torch.ones_like(logp), s.clip_ratio_low,
                                       s.clip_ratio_high, 10.0, clip=clip)
                loss = losses.mean(dim=1).sum()  # each seed's token-mean; seeds are independent
                opt.zero_grad()
                loss.backward()
                opt.step()
                with torch.no_grad():
                    ratio = torch.exp(logp.detach() - old[:, cols])
                    a = adv[:, cols]
                    hit = ((a > 0) & (ratio > 1 + s.clip_ratio_high)) | ((a < 0) & (ratio < 1 - s.clip_ratio_low))
                    clipped += hit.double().mean(dim=1).numpy() if clip else 0.0
        if step % record_every == 0 or step == s.steps:
            steps.append(step)
            traj.append(torch.softmax(logits, -1)[:, 0].detach().numpy().copy())
    return {"steps": steps, "p_favoured": np.stack(traj, axis=1), "settings": asdict(s),
            "clipfrac": clipped / (s.steps * s.updates_per_rollout)}


def summarise(result: dict) -> dict:
    """Median, mean and quartiles of the final p(favoured), and the shift of the median from the start."""
    final = result["p_favoured"][:, -1]
    start = float(result["p_favoured"][0, 0])
    return {"start": start, "median": float(np.median(final)), "mean": float(final.mean()),
            "q25": float(np.quantile(final, 0.25)), "q75": float(np.quantile(final, 0.75)),
            "median_shift": float(np.median(final) - start), "clipfrac": float(result["clipfrac"].mean())}
