"""A minimal, autograd-free training loop: shuffle, batch, forward+backward, optimizer step."""

import time

import numpy as np

from .module import check_batch, check_int


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


def train(
    model,
    optimizer,
    images,
    *,
    epochs,
    batch_size,
    rng,
    beta=1.0,
    transform=None,
    start_epoch=0,
    on_batch=None,
    on_epoch=None,
):
    """Train ``model`` for epochs ``start_epoch + 1 .. epochs``; returns one dict per epoch.

    images: (N, ...) training set. Each epoch shuffles it with ``rng``, and each batch goes
        through ``transform(batch, rng)`` if given (e.g. dynamic binarization), which must
        return an array of the model's dtype.
    rng: the single ``numpy.random.Generator`` for shuffling, ``transform`` and eps: the
        same seed (or the same saved ``rng.bit_generator.state``) gives the same run.
    on_batch(epoch, step, n_steps, terms): called after each optimizer step with the batch's
        terms, the dict returned by ``model.loss_and_grads`` ({"loss": ..., ...}).
    on_epoch(epoch, stats): called after each epoch with the epoch's stats dict ({"epoch", the
        epoch mean of every term, "seconds", "images_per_s"}) (e.g. to
        evaluate and write a checkpoint).
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
    n_steps = -(-n // batch_size)
    history = []
    for epoch in range(start_epoch + 1, epochs + 1):
        started = time.perf_counter()
        order = rng.permutation(n)
        sums = {}
        for step in range(n_steps):
            batch = images[order[step * batch_size : (step + 1) * batch_size]]
            if transform is not None:
                batch = transform(batch, rng)
            terms = model.loss_and_grads(batch, rng=rng, beta=beta)
            check_finite(terms, epoch, step + 1)
            optimizer.step(model.grads)
            for name, value in terms.items():
                sums[name] = sums.get(name, 0.0) + value * batch.shape[0]
            if on_batch is not None:
                on_batch(epoch, step + 1, n_steps, terms)
        seconds = time.perf_counter() - started
        stats = {"epoch": epoch, **{k: v / n for k, v in sums.items()}, "seconds": seconds, "images_per_s": n / seconds}
        history.append(stats)
        if on_epoch is not None:
            on_epoch(epoch, stats)
    return history
