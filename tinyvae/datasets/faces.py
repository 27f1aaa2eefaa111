"""Synthetic faces: procedural RGB cartoons with known CelebA attributes, no download needed.

    images, attributes, names = synthetic_faces(10_000, size=64, rng=np.random.default_rng(0))
    # images (10000, 3, 64, 64) uint8; attributes (10000, 6) uint8 in {0, 1}; names as below

The attributes carry CelebA's names (a subset of its 40, in CelebA's order), each drawn
independently for every face, so the triple has the shape of :func:`load_celeba`'s:

==============  ====  =====================================================================
name            p     how it is drawn
==============  ====  =====================================================================
Blond_Hair      0.3   hair (and mustache) yellow, else black, dark brown or auburn
Eyeglasses      0.3   black frames around both eyes and a bridge; tinted lenses darken the eyes
Male            0.5   short hair and thick eyebrows; otherwise long hair down to the shoulders
Mustache        0.3   a wide band of hair (half as bright as the head's) between nose and mouth
Smiling         0.5   an open half-disc mouth with teeth; otherwise a closed straight mouth
Wearing_Hat     0.3   a coloured crown and brim covering the top of the head
==============  ====  =====================================================================

Nuisance variation, independent of the attributes: skin tone, background colour, shirt and
hat colours, face size, position (offset of the centre) and pose (in-plane tilt).

Every random number is drawn up front from ``rng`` in a fixed order (the attributes first),
so the faces depend on the seed and ``n`` only, never on the chunks they are painted in, and
passing ``attributes=`` (forcing them) leaves every nuisance draw unchanged: the same seed
with one attribute flipped gives the same face with only that attribute changed. Painting is
vectorized with coordinate grids (masks of ellipses, half-discs and rectangles, rotated with
the face), in chunks of faces to bound memory: 10,000 faces at 64 x 64 take about 5 s.
"""

import numpy as np

from ..module import check_int, check_rng

FACE_ATTRIBUTES = ("Blond_Hair", "Eyeglasses", "Male", "Mustache", "Smiling", "Wearing_Hat")
FACE_PROBABILITIES = (0.3, 0.3, 0.5, 0.3, 0.5, 0.3)  # P(attribute = 1), in FACE_ATTRIBUTES order
_CHUNK = 256  # faces drawn at once: (256, 64, 64, 3) float32 is 12 MB

_DARK_HAIR = np.array([[30, 25, 22], [85, 55, 35], [125, 60, 35]], dtype=np.float32)  # black, brown, auburn
_BLOND_HAIR = np.array([225, 195, 105], dtype=np.float32)
_LIGHT_SKIN, _DARK_SKIN = np.array([245, 210, 185], np.float32), np.array([105, 70, 50], np.float32)


def _draw_nuisance(n, size, rng):
    """Per-face nuisance parameters (each (n,) or (n, 3)), in a fixed order."""
    skin_t = rng.uniform(0.0, 1.0, n)
    drawn = {
        "skin": (1 - skin_t)[:, None] * _LIGHT_SKIN + skin_t[:, None] * _DARK_SKIN + rng.uniform(-8, 8, (n, 3)),
        "background": rng.uniform(40, 230, (n, 3)),
        "shirt": rng.uniform(20, 235, (n, 3)),
        "hat": rng.uniform(0, 1, (n, 3)) ** 2 * 200 + 20,  # often saturated
        "dark_hair": _DARK_HAIR[rng.integers(0, len(_DARK_HAIR), n)] + rng.uniform(-10, 10, (n, 3)),
        "blond_hair": _BLOND_HAIR + rng.uniform(-15, 15, (n, 3)),
        "radius": rng.uniform(0.22, 0.27, n) * size,  # half the face's height, in pixels
        "cx": size / 2 + rng.uniform(-0.06, 0.06, n) * size,
        "cy": size * 0.52 + rng.uniform(-0.05, 0.05, n) * size,
        "tilt": rng.uniform(-0.25, 0.25, n),  # radians
    }
    return {k: v.astype(np.float32) for k, v in drawn.items()}


def synthetic_faces(n, size=64, rng=None, attributes=None):
    """``n`` procedural faces: (images (n, 3, size, size) uint8, attributes (n, 6) uint8, names).

    rng: a numpy.random.Generator (required). attributes: optional (n, 6) array of 0/1 that
    replaces the drawn attributes (the nuisance draws stay the same, see the module docstring).
    """
    n = check_int(n, "n", "synthetic_faces", 1)
    size = check_int(size, "size", "synthetic_faces", 16)
    check_rng(rng, "synthetic_faces")
    drawn = (rng.uniform(size=(n, len(FACE_ATTRIBUTES))) < np.array(FACE_PROBABILITIES)).astype(np.uint8)
    nuisance = _draw_nuisance(n, size, rng)
    if attributes is not None:
        attributes = np.asarray(attributes)
        if attributes.shape != drawn.shape or not np.isin(attributes, (0, 1)).all():
            raise ValueError(
                f"synthetic_faces: attributes must be an ({n}, {len(FACE_ATTRIBUTES)}) array of 0/1 "
                f"in the order {FACE_ATTRIBUTES}, got shape {attributes.shape}"
            )
        drawn = attributes.astype(np.uint8)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    for start in range(0, n, _CHUNK):
        part = slice(start, min(start + _CHUNK, n))
        chunk = _paint({k: v[part] for k, v in nuisance.items()}, drawn[part], size)  # (m, S, S, 3)
        images[part] = np.clip(np.rint(chunk), 0, 255).astype(np.uint8).transpose(0, 3, 1, 2)
    return images, drawn, list(FACE_ATTRIBUTES)


def _paint(p, attributes, size):
    """Paint faces back to front; returns (m, S, S, 3) float32 in [0, 255] (before clipping)."""
    m = len(attributes)
    blond, glasses, male, mustache, smiling, hat = (attributes[:, i].astype(bool)[:, None, None] for i in range(6))

    # face coordinates: u to the face's right, v down, in units of the face's half-height,
    # rotated by the tilt: every feature below is a mask over (u, v)
    y, x = np.mgrid[0:size, 0:size].astype(np.float32) + 0.5  # (S, S) pixel centres
    dx = (x[None] - p["cx"][:, None, None]) / p["radius"][:, None, None]  # (m, S, S)
    dy = (y[None] - p["cy"][:, None, None]) / p["radius"][:, None, None]
    cos, sin = np.cos(p["tilt"])[:, None, None], np.sin(p["tilt"])[:, None, None]
    u, v = cos * dx + sin * dy, -sin * dx + cos * dy  # (m, S, S) each

    def ellipse(cu, cv, ru, rv):
        return ((u - cu) / ru) ** 2 + ((v - cv) / rv) ** 2 < 1.0

    def box(u0, u1, v0, v1):
        return (u > u0) & (u < u1) & (v > v0) & (v < v1)

    # paint labels (indices into each face's palette of colours), then look the colours up once
    hair = np.where(blond[:, :, 0], p["blond_hair"], p["dark_hair"])  # (m, 3)
    palette = []  # (m, 3) arrays; a label is an index into it

    def colour(value):
        palette.append(np.broadcast_to(np.asarray(value, np.float32), (m, 3)))
        return len(palette) - 1

    labels = np.full((m, size, size), colour(p["background"]), dtype=np.uint8)

    def paint(mask, label):
        np.copyto(labels, np.uint8(label), where=mask)

    HAIR, SKIN = colour(hair), colour(p["skin"])
    head = ellipse(0.0, -0.05, 0.95, 1.1)
    shoulders = ellipse(0.0, 2.05, 1.7, 0.85)
    long_hair = (ellipse(0.0, 0.0, 1.2, 1.2) | box(-1.2, 1.2, 0.0, 1.45)) & ~male
    paint(long_hair, HAIR)
    paint(shoulders, colour(p["shirt"]))
    paint(box(-0.32, 0.32, 0.6, 1.4), colour(p["skin"] * 0.9))  # neck, a little shaded
    paint(head & (v < -0.3), HAIR)  # the top of the head (short hair)
    paint(ellipse(0.0, 0.05, 0.78, 0.95) & ~ellipse(0.0, -0.85, 1.0, 0.45), SKIN)  # face below the hairline
    paint(long_hair & shoulders, HAIR)  # long hair falls over the shoulders

    WHITE, PUPIL, BROW = colour((245, 245, 245)), colour((35, 30, 40)), colour(hair * 0.7)
    brow_bottom = -0.36 + np.where(male, 0.14, 0.07)  # male eyebrows are twice as thick
    for side in (-1.0, 1.0):  # eyes and eyebrows
        paint(ellipse(side * 0.33, -0.12, 0.17, 0.095), WHITE)
        paint(ellipse(side * 0.33, -0.12, 0.075, 0.075), PUPIL)
        paint(box(side * 0.33 - 0.2, side * 0.33 + 0.2, -0.36, brow_bottom), BROW)
    paint(box(-0.05, 0.05, -0.05, 0.25), colour(p["skin"] * 0.8))  # nose

    smile = ellipse(0.0, 0.45, 0.34, 0.3) & (v > 0.45) & smiling
    paint(smile, colour((120, 25, 35)))
    paint(smile & (v < 0.53) & (np.abs(u) < 0.26), colour((250, 250, 245)))  # teeth
    paint(box(-0.22, 0.22, 0.52, 0.58) & ~smiling, colour((150, 45, 50)))  # closed mouth
    paint(box(-0.34, 0.34, 0.3, 0.46) & mustache, colour(hair * 0.5))

    FRAME = colour((15, 15, 15))
    lenses = np.zeros((m, size, size), dtype=bool)
    for side in (-1.0, 1.0):  # eyeglasses: frames around tinted lenses
        lens = ellipse(side * 0.33, -0.12, 0.23, 0.17) & glasses
        lenses |= lens
        paint(lens & ~ellipse(side * 0.33, -0.12, 0.19, 0.13), FRAME)
    paint(box(-0.12, 0.12, -0.16, -0.1) & glasses, FRAME)  # bridge

    paint((box(-0.72, 0.72, -1.75, -0.6) | box(-1.2, 1.2, -0.72, -0.56)) & hat, colour(p["hat"]))  # crown, brim

    palette = np.stack(palette, axis=1)  # (m, n_labels, 3)
    img = palette[np.arange(m)[:, None, None], labels]  # (m, S, S, 3)
    img[lenses] *= 0.55  # tinted lenses darken what is behind them
    return img
