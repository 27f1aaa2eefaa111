"""The swiss roll, the toy data of the CSVAE paper (Klys, Snell & Zemel 2018): 3-D points, y = 1 on one part.

    x, y = swiss_roll(2000, rng=np.random.default_rng(0))  # (2000, 3) float32, (2000, 1) int64 in {0, 1}

A point at angle t along the spiral and height h is (t cos t, h, t sin t) / 10, with t uniform in
[1.5 pi, 4.5 pi] (one and a half turns, as in scikit-learn's make_swiss_roll) and h uniform in [-1, 1];
the division by 10 puts every coordinate in about [-1.4, 1.4]. y = 1 on the outer half of the roll,
t > 3 pi (base rate 1/2). ``noise`` adds N(0, noise^2) to each coordinate, after the scaling.
"""

import numpy as np

from ..module import check_int, check_rng

T_LOW, T_HIGH, T_SPLIT = 1.5 * np.pi, 4.5 * np.pi, 3.0 * np.pi  # the angle's range; y = 1 beyond T_SPLIT


def swiss_roll(n, rng, noise=0.0):
    """n points of the swiss roll, (n, 3) float32, and their attribute y (n, 1) int64: 1 where t > 3 pi."""
    n = check_int(n, "n", "swiss_roll", 1)
    check_rng(rng, "swiss_roll")
    if not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"swiss_roll: noise must be a finite number >= 0, got {noise!r}")
    t = rng.uniform(T_LOW, T_HIGH, n)  # (n,): the angle, also the distance from the axis
    h = rng.uniform(-1.0, 1.0, n)  # (n,): the height
    x = np.stack([t * np.cos(t) / 10.0, h, t * np.sin(t) / 10.0], axis=1)  # (n, 3)
    x += noise * rng.standard_normal(x.shape)
    return x.astype(np.float32), (t > T_SPLIT).astype(np.int64)[:, None]
