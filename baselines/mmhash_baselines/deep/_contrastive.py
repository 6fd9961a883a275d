"""Pieces the two contrastive deep baselines (UCCH, DUCH) share: seeded random streams and
learning-rate schedules (their updates, clipped or not, are :func:`mmhash.deep.update`).

Used by UCCH, DUCH and MGAH (MGAH: its positive / negative draws and its adversarial
learning-rate drop).

Not part of :mod:`mmhash.deep`, which has no per-method random streams (it seeds torch's global
CPU generator for the fit, which a CUDA draw would not use); written here so that these methods
draw their negatives / augmentations / interpolations the same way.
"""

from __future__ import annotations

import numpy as np
import torch


def derived_seed(random_state: int, stream: int) -> int:
    """A 63-bit seed for the random stream ``stream`` of a fit seeded with ``random_state``
    (numpy's SeedSequence: different streams are independent, the same pair always agrees)."""
    state = np.random.SeedSequence([int(random_state), int(stream)]).generate_state(2, np.uint64)
    return int(state[0] >> np.uint64(1))


def seeded_generator(random_state: int, stream: int, device: torch.device) -> torch.Generator:
    """A ``torch.Generator`` on ``device`` seeded from ``random_state`` and ``stream``: the
    method's draws never touch a global RNG and are the same on every run on the CPU."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derived_seed(random_state, stream))
    return generator


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    """Set the learning rate of every parameter group of ``optimizer``."""
    for group in optimizer.param_groups:
        group["lr"] = float(learning_rate)
