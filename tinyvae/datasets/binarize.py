"""Turn uint8 images into the float32 NCHW arrays the model takes, optionally binarized.

Every function here returns a new float32 array of shape (N, 1, H, W) (NCHW, one channel).
Input may be (N, H, W) or (N, 1, H, W), either uint8 in 0..255 (divided by 255) or floating
point already in [0, 1].
"""

import numpy as np


def to_nchw_float(images):
    """Scale images to float32 intensities in [0, 1], shaped (N, 1, H, W)."""
    images = np.asarray(images)
    if images.ndim == 3:
        images = images[:, None]  # (N, H, W) -> (N, 1, H, W)
    if images.ndim != 4 or images.shape[1] != 1:
        raise ValueError(f"expected images of shape (N, H, W) or (N, 1, H, W), got {images.shape}")
    if images.dtype == np.uint8:
        return images.astype(np.float32) / np.float32(255.0)  # (N, 1, H, W) float32
    if not np.issubdtype(images.dtype, np.floating):
        raise ValueError(
            f"expected uint8 images (0..255) or floating ones in [0, 1], got {images.dtype}"
        )
    out = images.astype(np.float32)  # always a copy
    if out.size and not (out.min() >= 0.0 and out.max() <= 1.0):  # also rejects NaN
        raise ValueError(
            f"expected floating-point images in [0, 1], found values in "
            f"[{out.min()}, {out.max()}]; pass uint8 images to have them divided by 255"
        )
    return out


def binarize_static(images):
    """Fixed binarization: 1.0 where pixel / 255 > 0.5 (uint8: pixel >= 128), else 0.0.

    Returns (N, 1, H, W) float32. Deterministic: the same images always give the same output.
    """
    return (to_nchw_float(images) > 0.5).astype(np.float32)


def binarize_dynamic(images, rng):
    """Dynamic binarization: each pixel is 1.0 with probability pixel / 255, else 0.0.

    Draws from ``rng`` (a ``numpy.random.Generator``), so every call gives a fresh sample
    (call it per mini-batch to re-sample every epoch) and a seeded generator reproduces them.
    Returns (N, 1, H, W) float32.
    """
    if not isinstance(rng, np.random.Generator):
        raise TypeError(
            "rng must be a numpy.random.Generator, e.g. np.random.default_rng(seed); "
            f"got {type(rng).__name__}"
        )
    p = to_nchw_float(images)  # (N, 1, H, W) float32 in [0, 1]
    u = rng.random(p.shape, dtype=np.float32)  # uniform in [0, 1): P(u < p) = p
    return (u < p).astype(np.float32)
