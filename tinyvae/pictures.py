"""Pictures of a trained VAE, for images of C = 1 (gray) or 3 (RGB) channels in [0, 1].

Each picture is a function ``draw(plt, run) -> matplotlib Figure`` of a :class:`PictureRun`
(the model, the test images, the history...); it raises :class:`Skip` with the reason when
the run cannot support it (a test set too small, a latent space that is not 2-D...).
:func:`save_figure` writes a figure atomically; :func:`save_frame` and :func:`save_gif` write
the per-epoch sample grids and their animation with Pillow (no matplotlib needed).

    PICTURES = {"reconstructions.png": reconstructions, "samples.png": samples, ...}
    CONDITIONAL_PICTURES = {"classes.png": classes, "analogies.png": analogies}

A conditional model (``model.num_classes`` = K) is given the labels it needs: the test
images' own labels, and for prior samples one row per class. The CONDITIONAL_PICTURES
skip unconditional models.
"""

import io
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from .evaluate import ACTIVE_UNIT_THRESHOLD, latent_means, latent_statistics, pca
from .fileio import atomic_write
from .latent_edit import morph


class Skip(Exception):
    """This picture cannot be drawn for this run; the message says why (it goes in summary.json)."""


@dataclass
class PictureRun:
    """What the pictures draw from."""

    model: object
    test_x: np.ndarray  # (N, C, H, W) in [0, 1]
    rng: np.random.Generator  # for the prior samples
    test_labels: np.ndarray = None  # (N,) integer classes, or None
    class_names: list = None  # names of the classes, indexed by label
    history: list = field(default_factory=list)  # per-epoch dicts, with "test_elbo"
    metrics: list = field(default_factory=list)  # per-step dicts {"epoch", "step", <terms>, ...}
    cmap: str = "gray"  # for C = 1: "gray" (1 is white) or "gray_r" (1 is black ink, MNIST-style)
    title: str = ""  # a note for the curves (e.g. how the data were binarized)


def check_channels(images):
    """Raise Skip unless ``images`` is (N, C, H, W) with C = 1 or 3."""
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise Skip(f"pictures need images (N, 1 or 3, H, W), got {images.shape}")


def test_labels(run, n=None):
    """The labels y of the first n test images for a conditional model, None for an unconditional one."""
    if getattr(run.model, "num_classes", None) is None:
        return None
    if run.test_labels is None:
        raise Skip("a conditional model needs the test labels")
    return np.asarray(run.test_labels[:n])


def num_classes(run):
    """K of a conditional model; Skip for an unconditional one."""
    k = getattr(run.model, "num_classes", None)
    if k is None:
        raise Skip("for conditional models only (num_classes), this one is not")
    return k


def tile(images, cols):
    """Images (N, C, H, W) -> one mosaic, row by row, blank (0) padding: (rows*H, cols*W) if C = 1, else (..., C)."""
    n, c, h, w = images.shape
    rows = -(-n // cols)
    grid = np.zeros((rows * cols, c, h, w), dtype=images.dtype)
    grid[:n] = images
    mosaic = grid.reshape(rows, cols, c, h, w).transpose(0, 3, 1, 4, 2).reshape(rows * h, cols * w, c)
    return mosaic[:, :, 0] if c == 1 else mosaic


def _mosaic_figure(plt, mosaic, title, cmap):
    fig, ax = plt.subplots(figsize=(mosaic.shape[1] / 40, mosaic.shape[0] / 40 + 0.4))
    if mosaic.ndim == 2:
        ax.imshow(mosaic, cmap=cmap, vmin=0, vmax=1, interpolation="nearest")
    else:
        ax.imshow(np.clip(mosaic, 0, 1), interpolation="nearest")
    ax.set_title(title, fontsize=9)
    ax.axis("off")
    return fig


def reconstructions(plt, run, cols=12, pairs=4):
    """Test images (odd rows) and E[x | z = mu(x)] (even rows)."""
    check_channels(run.test_x)
    cols = min(cols, len(run.test_x))
    pairs = min(pairs, len(run.test_x) // cols)
    x = run.test_x[: cols * pairs]  # (cols * pairs, C, H, W)
    rec = run.model.reconstruct(x, test_labels(run, len(x)))
    rows = [row for p in range(pairs) for row in (x[p * cols : (p + 1) * cols], rec[p * cols : (p + 1) * cols])]
    return _mosaic_figure(plt, tile(np.concatenate(rows), cols),
                          "test images (odd rows) and E[x | z = mu(x)] (even rows)", run.cmap)  # fmt: skip


def samples(plt, run, n=100, cols=10):
    """E[x | z] for n draws z ~ N(0, I) from the prior; conditional: E[x | z, y], row r of class r mod K."""
    k = getattr(run.model, "num_classes", None)
    y = None if k is None else (np.arange(n) // cols) % k  # (n,)
    drawn = run.model.sample(n, run.rng, y=y)  # (n, C, H, W)
    check_channels(drawn)
    title = f"E[x | z], z ~ N(0, I): {n} samples from the prior"
    if k is not None:
        title = f"E[x | z, y], z ~ N(0, I): {n} samples from the prior, row r of class y = r mod {k}"
    return _mosaic_figure(plt, tile(drawn, cols), title, run.cmap)


def latent(plt, run):
    """Posterior means of the test set, coloured by class; PCA if the latent space is more than 2-D."""
    if len(run.test_x) < 3:
        raise Skip(f"needs at least 3 test images to scatter, got {len(run.test_x)}")
    mu = latent_means(run.model, run.test_x, y=test_labels(run)).astype(np.float64)  # (N, L)
    labels = np.zeros(len(mu), int) if run.test_labels is None else np.asarray(run.test_labels)
    names = run.class_names if run.class_names is not None else [str(c) for c in range(int(labels.max()) + 1)]
    if mu.shape[1] == 2:
        xy, axis_names = mu, ("z[0]", "z[1]")
    elif mu.shape[1] == 1:
        xy, axis_names = np.column_stack([mu[:, 0], labels]), ("z[0]", "class")
    else:
        xy, ratio = pca(mu)
        axis_names = tuple(f"PC{i + 1} ({100 * r:.0f}% of the variance)" for i, r in enumerate(ratio))
    fig, ax = plt.subplots(figsize=(7, 6))
    for c, name in enumerate(names):
        pick = labels == c
        if pick.any():
            ax.scatter(xy[pick, 0], xy[pick, 1], s=3, color=plt.cm.tab10(c % 10), label=name, alpha=0.7)
    if run.test_labels is not None:
        ax.legend(markerscale=4, fontsize=8, loc="best")
    given = "" if getattr(run.model, "num_classes", None) is None else ", y"
    ax.set(xlabel=axis_names[0], ylabel=axis_names[1], title=f"posterior means mu(x{given}) of {len(mu)} test images")
    return fig


def manifold(plt, run, n=20, class_n=8):
    """Decode z on an n x n grid of Normal quantiles 5%..95%, so each cell covers equal prior mass.

    Conditional: one class_n x class_n grid per class y, side by side (five to a row).
    """
    if run.model.latent_dim != 2:
        raise Skip(f"needs latent dim 2, the model has {run.model.latent_dim}")
    k = getattr(run.model, "num_classes", None)
    n = n if k is None else class_n
    q = np.array([NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, n)], dtype=run.model.dtype)  # (n,)
    z = np.stack(np.meshgrid(q, q[::-1]), axis=-1).reshape(-1, 2)  # (n * n, 2): z[1] decreases downwards
    title = "on a grid of N(0, 1) quantiles 5%..95%: z[0] left to right, z[1] bottom to top"
    if k is None:
        decoded = run.model.mean(run.model.decode(z))  # (n * n, C, H, W)
        check_channels(decoded)
        return _mosaic_figure(plt, tile(decoded, n), f"E[x | z] {title}", run.cmap)
    panels = []
    for y in range(k):  # each class's grid as one image with a blank border, (C, n*H + 2, n*W + 2)
        decoded = run.model.mean(run.model.decode(z, np.full(len(z), y)))  # (n * n, C, H, W)
        check_channels(decoded)
        grid = tile(decoded, n)
        grid = grid[None] if grid.ndim == 2 else grid.transpose(2, 0, 1)  # (C, n*H, n*W)
        panels.append(np.pad(grid, ((0, 0), (1, 1), (1, 1))))
    return _mosaic_figure(plt, tile(np.stack(panels), min(k, 5)), f"E[x | z, y], one panel per class y, {title}",
                          run.cmap)  # fmt: skip


def interpolation(plt, run, pairs=5, steps=10):
    """Rows: test image a, decoded points on the line from mu(a) to mu(b), test image b."""
    if len(run.test_x) < 2:
        raise Skip(f"needs at least 2 test images, got {len(run.test_x)}")
    check_channels(run.test_x)
    model, x, labels = run.model, run.test_x, test_labels(run)
    if labels is None:
        first = np.arange(0, 2 * min(pairs, len(x) // 2), 2)  # pairs (0, 1), (2, 3), ...
        second, y = first + 1, None
    else:  # conditional: the first two test images of each class that has two, up to ``pairs`` classes
        twos = [t for t in (np.flatnonzero(labels == c)[:2] for c in np.unique(labels)) if len(t) == 2][:pairs]
        if not twos:
            raise Skip("needs two test images of one class, for a conditional model")
        first, second = np.array(twos).T
        y = labels[first]  # (pairs,): the class of a and of b
    a, b = x[first], x[second]  # (pairs, C, H, W) each
    mu_a, mu_b = model.encode(a, y)[0], model.encode(b, y)[0]  # (pairs, L) each
    rows = []
    for r in range(len(a)):
        z = morph(mu_a[r], mu_b[r], steps)  # (steps, L): (1 - t) mu_a + t mu_b, t = 0..1
        decoded = model.mean(model.decode(z, None if y is None else np.full(steps, y[r])))  # (steps, C, H, W)
        rows += [a[r : r + 1], decoded, b[r : r + 1]]
    line = "decoded (1 - t) mu(a) + t mu(b)" if y is None else "of one class y, decoded (1 - t) mu(a, y) + t mu(b, y)"
    return _mosaic_figure(plt, tile(np.concatenate(rows), steps + 2),
                          f"test image a, {line} for t = 0..1, test image b", run.cmap)  # fmt: skip


def curves(plt, run):
    """Each training term per step (from metrics.jsonl) against the epoch; the test -ELBO per epoch with the loss."""
    if not run.metrics:
        raise Skip("no training steps yet")
    terms = [k for k in run.metrics[0] if k not in ("epoch", "step", "n_steps", "images_per_s", "beta")]
    fig, axes = plt.subplots(1, len(terms), figsize=(4.3 * len(terms), 3.8), constrained_layout=True, squeeze=False)
    when = [m["epoch"] - 1 + m["step"] / m["n_steps"] for m in run.metrics]  # fractional epoch at each step's end
    for ax, term in zip(axes[0], terms):
        ax.plot(when, [m[term] for m in run.metrics], lw=0.6, alpha=0.8, label="train (per step)")
        if term == "loss" and run.history:
            ax.plot([h["epoch"] for h in run.history], [-h["test_elbo"] for h in run.history], "s-",
                    label="test -ELBO (end of epoch)")  # fmt: skip
            ax.legend(fontsize=8)
        ax.set(title=term, xlabel="epoch", ylabel="nats / image")
    fig.suptitle(run.title, fontsize=8)
    return fig


def kl_per_dim(plt, run):
    """The test set's mean KL per latent dimension, largest first; active units (Burda et al.) in colour."""
    stats = latent_statistics(run.model, run.test_x, y=test_labels(run))
    kl = np.asarray(stats["kl_per_dim"])  # (L,)
    order = np.argsort(-kl, kind="stable")
    active = np.asarray(stats["active"])[order]
    fig, ax = plt.subplots(figsize=(max(4.0, 0.25 * len(kl) + 1.5), 3.6), constrained_layout=True)
    ax.bar(np.arange(len(kl)), kl[order], color=np.where(active, "tab:blue", "tab:gray"))
    ax.set_xticks(np.arange(len(kl)), [str(d) for d in order], fontsize=7 if len(kl) > 20 else 9)
    ax.bar([0], [0], color="tab:blue", label=f"active: Var_x(mu_d) > {ACTIVE_UNIT_THRESHOLD}")  # legend entries
    ax.bar([0], [0], color="tab:gray", label="inactive (collapsed to the prior)")
    ax.legend(fontsize=8)
    ax.set(xlabel="latent dimension d (sorted by KL)", ylabel="mean KL(q(z_d | x) || N(0, 1)), nats",
           title=f"KL per dimension on {len(run.test_x)} test images: {stats['active_units']} of {len(kl)} "
           f"units active, total KL {kl.sum():.2f} nats")  # fmt: skip
    return fig


def classes(plt, run, cols=10):
    """E[x | z, y]: row y of class y, column j of one z_j ~ N(0, I): the style held along a column."""
    k = num_classes(run)
    z = run.rng.standard_normal((cols, run.model.latent_dim), dtype=run.model.dtype)  # (cols, L)
    decoded = run.model.mean(run.model.decode(np.tile(z, (k, 1)), np.repeat(np.arange(k), cols)))  # (k*cols, C, H, W)
    check_channels(decoded)
    title = f"E[x | z, y]: row y of class y = 0..{k - 1}, one z ~ N(0, I) per column"
    return _mosaic_figure(plt, tile(decoded, cols), title, run.cmap)


def analogies(plt, run, n=8):
    """Rows: a test image x of class y, then E[x | z = mu(x, y), y'] for every class y' = 0..K-1."""
    k = num_classes(run)
    check_channels(run.test_x)
    if not len(run.test_x):
        raise Skip("needs at least 1 test image")
    x = run.test_x[:n]  # (n, C, H, W)
    mu, _ = run.model.encode(x, test_labels(run, len(x)))  # (n, L): the style of each test image
    decoded = run.model.mean(run.model.decode(np.repeat(mu, k, axis=0), np.tile(np.arange(k), len(x))))  # (n*k, ...)
    rows = np.concatenate([x[:, None], decoded.reshape(len(x), k, *x.shape[1:])], axis=1)  # (n, 1 + k, C, H, W)
    return _mosaic_figure(plt, tile(rows.reshape(-1, *x.shape[1:]), k + 1),
                          f"test image x of class y, then E[x | z = mu(x, y), y'] for y' = 0..{k - 1}",
                          run.cmap)  # fmt: skip


PICTURES = {
    "reconstructions.png": reconstructions,
    "samples.png": samples,
    "latent.png": latent,
    "manifold.png": manifold,
    "interpolation.png": interpolation,
    "curves.png": curves,
    "kl_per_dim.png": kl_per_dim,
}
CONDITIONAL_PICTURES = {"classes.png": classes, "analogies.png": analogies}


def save_figure(fig, path):
    """Render ``fig`` as PNG in memory, then write it atomically (a planted symlink is replaced)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def to_pixels(images, cols, cmap="gray"):
    """Images (N, C, H, W) in [0, 1] -> a uint8 mosaic for Pillow; "gray_r" inverts gray (1 -> black)."""
    mosaic = np.clip(tile(images, cols), 0, 1)
    if mosaic.ndim == 2 and cmap == "gray_r":
        mosaic = 1 - mosaic
    return np.round(255 * mosaic).astype(np.uint8)


def save_frame(path, images, cols, cmap="gray", scale=2):
    """One grid of images as a PNG, each pixel ``scale`` x ``scale``, atomically (e.g. an epoch's samples)."""
    from PIL import Image

    check_channels(images)
    pixels = to_pixels(images, cols, cmap).repeat(scale, axis=0).repeat(scale, axis=1)
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG")
    atomic_write(path, lambda f: f.write(buffer.getvalue()))


def save_gif(path, frame_paths, ms_per_frame=500):
    """An animated GIF of the PNG frames, in order, looping; written atomically."""
    from PIL import Image

    frames = []
    for frame in frame_paths:
        with Image.open(frame) as image:
            frames.append(image.convert("RGB"))
    buffer = io.BytesIO()
    frames[0].save(buffer, format="GIF", save_all=True, append_images=frames[1:], duration=ms_per_frame, loop=0)
    atomic_write(path, lambda f: f.write(buffer.getvalue()))
