"""Editing faces in latent space: attribute vectors, attribute arithmetic, morphing (NumPy only).

    codes = latent_means(model, images)                         # (N, L) posterior means
    smiling = attribute_vector(codes, attributes[:, k])         # (L,) mean code with minus without
    edited = add_attribute(codes[:5], smiling, [-3, 0, 3])      # (5, 3, L): z + factor * vector
    path = morph(codes[0], codes[1], steps=8)                   # (8, L): straight line from a to b

Decode the results with ``model.mean(model.decode(z))``, as in examples/faces.py. Following
"Generative Deep Learning" (Foster), VAE chapter: the attribute vector is the difference of
the mean codes of the images with and without the attribute, added to codes unnormalized.
"""

import numpy as np

from .module import check_int


def _codes(codes, where, name="codes"):
    if not isinstance(codes, np.ndarray) or codes.ndim != 2 or not np.issubdtype(codes.dtype, np.floating):
        raise ValueError(f"{where}: {name} must be a floating-point array (N, latent_dim), got "
                         f"{getattr(codes, 'shape', type(codes).__name__)} {getattr(codes, 'dtype', '')}")  # fmt: skip
    return codes


def attribute_vector(codes, has_attribute):
    """mean(codes of the images with the attribute) - mean(codes of those without): (L,), codes' dtype.

    codes: (N, L); has_attribute: (N,) of 0/1 or booleans (e.g. a column of CelebA's attributes).
    """
    codes = _codes(codes, "attribute_vector")
    has = np.asarray(has_attribute)
    if has.shape != (codes.shape[0],) or not np.all((has == 0) | (has == 1)):
        raise ValueError(f"attribute_vector: has_attribute must be ({codes.shape[0]},) of 0/1 (one per code), "
                         f"got shape {has.shape}")  # fmt: skip
    has = has.astype(bool)
    n_with = int(has.sum())
    if n_with == 0 or n_with == len(has):
        which = "with" if n_with == 0 else "without"
        raise ValueError(f"attribute_vector: no code {which} the attribute among {len(has)}; both groups are needed")
    return (codes[has].mean(axis=0) - codes[~has].mean(axis=0)).astype(codes.dtype)


def add_attribute(codes, vector, factors):
    """codes (N, L) + factor * vector (L,) for each factor (F,): (N, F, L), row n's codes side by side."""
    codes = _codes(codes, "add_attribute")
    vector = np.asarray(vector)
    if vector.shape != codes.shape[1:]:
        raise ValueError(f"add_attribute: vector must be ({codes.shape[1]},) like a code, got shape {vector.shape}")
    factors = np.asarray(factors, dtype=codes.dtype)
    if factors.ndim != 1:
        raise ValueError(f"add_attribute: factors must be a list of numbers (F,), got shape {factors.shape}")
    return codes[:, None, :] + factors[None, :, None] * vector.astype(codes.dtype)  # (N, F, L)


def morph(code_a, code_b, steps):
    """(1 - t) code_a + t code_b at ``steps`` evenly spaced t from 0 to 1 (both ends included): (steps, L)."""
    steps = check_int(steps, "steps", "morph", 2)
    code_a, code_b = np.asarray(code_a), np.asarray(code_b)
    if code_a.ndim != 1 or code_a.shape != code_b.shape or not np.issubdtype(code_a.dtype, np.floating):
        raise ValueError(f"morph: code_a and code_b must be floating-point codes of one shape (L,), got "
                         f"{code_a.shape} and {code_b.shape}")  # fmt: skip
    t = np.linspace(0.0, 1.0, steps, dtype=code_a.dtype)[:, None]  # (steps, 1)
    return (1 - t) * code_a + t * code_b.astype(code_a.dtype)  # (steps, L)
