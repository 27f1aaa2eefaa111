"""A minimal, autograd-free training loop: shuffle, batch, forward+backward, optimizer step.

The KL weight beta is a number or a schedule, a function ``beta(epoch, step, n_steps)`` of
the step about to be taken (epoch and step count from 1), e.g. :func:`linear_warmup`. A
schedule depends on nothing but the step, so a resumed run gets the same betas.
"""

import time

import numpy as np

from .module import check_batch, check_int
from .progress import Progress


class NonFiniteLossError(FloatingPointError):
    """Raised when a loss term is NaN or infinite; the parameters are left un-updated."""


def check_finite(terms, epoch, step):
    """Raise NonFiniteLossError naming the first NaN/Inf term of ``terms`` (before any update)."""
    for name in sorted(terms, key=lambda name: name == "loss"):  # the terms first, their total last
        value = terms[name]
        if not np.isfinite(value):
            raise NonFiniteLossError(
                f"train: the loss term {name!r} is {value} at epoch {epoch}, step {step}; training stopped before "
                "this step's update (lower the learning rate, or check the input for NaN/Inf)"
            )


def linear_warmup(beta, warmup_epochs):
    """The schedule beta_t = beta * min(1, t / warmup_epochs), t = the epochs done before the step.

    t = (epoch - 1) + (step - 1) / n_steps: 0 at the first step, rising every step, and
    ``beta`` from epoch ``warmup_epochs + 1`` on. ``warmup_epochs = 0``: beta throughout.
    """
    if not (isinstance(beta, (int, float)) and np.isfinite(beta) and beta >= 0):
        raise ValueError(f"linear_warmup: beta must be a finite number >= 0, got {beta!r}")
    if not (isinstance(warmup_epochs, (int, float)) and np.isfinite(warmup_epochs) and warmup_epochs >= 0):
        raise ValueError(f"linear_warmup: warmup_epochs must be a finite number >= 0, got {warmup_epochs!r}")

    def schedule(epoch, step, n_steps):
        if warmup_epochs == 0:
            return float(beta)
        done = (epoch - 1) + (step - 1) / n_steps
        return float(beta) * min(1.0, done / warmup_epochs)

    return schedule


def train(
    model,
    optimizer,
    images,
    *,
    epochs,
    batch_size,
    rng,
    beta=1.0,
    labels=None,
    loss_kwargs=None,
    transform=None,
    start_epoch=0,
    on_batch=None,
    on_epoch=None,
    progress=False,
):
    """Train ``model`` for epochs ``start_epoch + 1 .. epochs``; returns one dict per epoch.

    images: (N, ...) training set. Each epoch shuffles it with ``rng``, and each batch goes
        through ``transform(batch, rng)`` if given (e.g. dynamic binarization), which must
        return an array of the model's dtype.
    rng: the single ``numpy.random.Generator`` for shuffling, ``transform`` and eps: the
        same seed (or the same saved ``rng.bit_generator.state``) gives the same run.
    beta: the KL weight, a number or a schedule ``beta(epoch, step, n_steps)`` (see
        :func:`linear_warmup`); None for models without one (a classifier).
    labels: (N,) integer classes (or (N, A) attributes), shuffled with the images; each batch's go to the
        model as ``y=``.
    loss_kwargs: more keyword arguments for ``model.loss_and_grads`` (e.g. ``{"objective":
        "iwae", "k": 5}``). Each step calls ``model.loss_and_grads(batch, rng=rng, [beta=...,]
        [y=...,] **loss_kwargs)``.
    on_batch(epoch, step, n_steps, terms): called after each optimizer step with the batch's
        terms, the dict returned by ``model.loss_and_grads`` ({"loss": ..., ...}).
    on_epoch(epoch, stats): called after each epoch with the epoch's stats dict ({"epoch", the
        epoch mean of every term, "seconds", "images_per_s"}) (e.g. to
        evaluate and write a checkpoint).
    progress: True to show each epoch's progress on stdout (:class:`tinyvae.progress.Progress`:
        a bar on a terminal, a line every 10 s in a log), besides any ``on_batch``.
    A NaN/Inf loss raises NonFiniteLossError before the step's update. The terms are batch
    means computed in float64, so the check fires at the same place on every backend.
    """
    batch_size = check_int(batch_size, "batch_size", "train", 1)
    epochs = check_int(epochs, "epochs", "train", 0)
    start_epoch = check_int(start_epoch, "start_epoch", "train", 0)
    if not isinstance(rng, np.random.Generator):
        raise ValueError(f"train: rng must be a numpy.random.Generator, got {type(rng).__name__}")
    check_batch(images, "train: images")
    n = images.shape[0]
    if labels is not None and (not isinstance(labels, np.ndarray) or labels.shape[:1] != (n,)):
        raise ValueError(f"train: labels must be an array of shape ({n},) or ({n}, A), one per image, "
                         f"got {getattr(labels, 'shape', type(labels).__name__)}")  # fmt: skip
    schedule = beta if callable(beta) or beta is None else (lambda epoch, step, n_steps: beta)
    shown = Progress().on_batch if progress else None
    n_steps = -(-n // batch_size)
    history = []
    for epoch in range(start_epoch + 1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(n)
        sums = {}
        for step in range(n_steps):
            picked = order[step * batch_size : (step + 1) * batch_size]
            batch = images[picked]
            if transform is not None:
                batch = transform(batch, rng)
            kwargs = dict(loss_kwargs or {})
            if schedule is not None:
                kwargs["beta"] = schedule(epoch, step + 1, n_steps)
            if labels is not None:
                kwargs["y"] = labels[picked]
            terms = model.loss_and_grads(batch, rng=rng, **kwargs)
            check_finite(terms, epoch, step + 1)
            optimizer.step(model.grads)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value * batch.shape[0]
            if shown is not None:
                shown(epoch, step + 1, n_steps, terms, epochs=epochs)
            if on_batch is not None:
                on_batch(epoch, step + 1, n_steps, terms)
        seconds = time.perf_counter() - started
        stats = {"epoch": epoch, **{k: v / n for k, v in sums.items()}, "seconds": seconds, "images_per_s": n / seconds}
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return history
