"""Checkpoints: a model, its optimizer and the training RNG, saved without pickle.

A checkpoint directory holds two kinds of file:

    checkpoint-epoch0003.npz   the arrays: "model/<param>" (model.params) and
                               "optimizer/<key>" (optimizer.state_dict(): step and moments)
    checkpoint.json            the metadata, and the pointer to the current .npz:
        {"format": "tinyvae-checkpoint", "version": 1,
         "npz": "checkpoint-epoch0003.npz", "npz_sha256": "...", "epoch": 3,
         "architecture": model.architecture(), "config": {...},
         "optimizer": {"type": "Adam", "step": 1407, "lr": 0.001, "beta1": 0.9, ...},
         "rng_state": rng.bit_generator.state, "history": [{...}, ...]}

Both are written atomically: to a temporary file in the same directory, flushed and fsynced,
then ``os.replace``d over the final name. The .npz of each epoch has its own name and is
written first; only then is ``checkpoint.json`` replaced to point at it, so the JSON always
names a complete .npz (its SHA-256 is checked on load). Once the JSON points at the new
.npz, older ``checkpoint-epoch*.npz`` files are deleted. A crash at any moment leaves
either the previous checkpoint or the new one, never a mix.

    save_checkpoint(out, model, optimizer, epoch=3, rng=rng, config=cfg, history=hist)
    ckpt = load_checkpoint(out)          # CheckpointError if missing, corrupt or truncated
    ckpt.restore(model, optimizer, rng)  # CheckpointError if the architecture differs
"""

import hashlib
import json
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fileio import atomic_write

FORMAT, VERSION = "tinyvae-checkpoint", 1
POINTER = "checkpoint.json"
OPTIMIZER_HYPERPARAMETERS = ("lr", "beta1", "beta2", "eps", "momentum")


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, or does not fit the model it is loaded into."""


def _sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _json_roundtrip(value):
    """``value`` as it reads back from JSON (tuples become lists), for comparisons."""
    return json.loads(json.dumps(value))


def _entries(items):
    """'3 entries [Dense, Tanh, Dense]': a list of layer descriptions, briefly."""
    names = [item["type"] if isinstance(item, dict) and "type" in item else repr(item) for item in items]
    return f"{len(items)} entries [{', '.join(names)}]"


def _differences(saved, current, where=""):
    """Paths at which two JSON values differ, e.g. ``latent_dim: checkpoint 2, model 20``."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current), key=str):
            if key not in current:
                out.append(f"{where}{key}: only in the checkpoint")
            elif key not in saved:
                out.append(f"{where}{key}: only in the model")
            else:
                out += _differences(saved[key], current[key], f"{where}{key}.")
        return out
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        out = []
        for i, (a, b) in enumerate(zip(saved, current)):
            out += _differences(a, b, f"{where.rstrip('.')}[{i}].")
        return out
    if saved != current:
        if isinstance(saved, list) and isinstance(current, list):
            return [f"{where.rstrip('.')}: checkpoint {_entries(saved)}, model {_entries(current)}"]
        return [f"{where.rstrip('.')}: checkpoint {saved!r}, model {current!r}"]
    return []


def optimizer_hyperparameters(optimizer):
    """{"type", "step", and whichever of lr/beta1/beta2/eps/momentum it has}: JSON-able."""
    hyper = {k: getattr(optimizer, k) for k in OPTIMIZER_HYPERPARAMETERS if hasattr(optimizer, k)}
    return {"type": type(optimizer).__name__, "step": optimizer.step_count, **hyper}


def save_checkpoint(directory, model, optimizer, *, epoch, rng, config=None, history=()):
    """Write the checkpoint of ``epoch`` into ``directory`` (created if needed); returns the JSON path.

    rng: the training ``numpy.random.Generator``; its ``bit_generator.state`` is saved so a
        resumed run draws exactly what an uninterrupted one would.
    config, history: JSON-able run settings and per-epoch stats, stored as they are.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    npz_name = f"checkpoint-epoch{int(epoch):04d}.npz"
    arrays = {f"model/{k}": v for k, v in model.params.items()}
    arrays.update({f"optimizer/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    atomic_write(directory / npz_name, lambda f: np.savez(f, **arrays))
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "npz": npz_name,
        "npz_sha256": _sha256(directory / npz_name),
        "epoch": int(epoch),
        "architecture": model.architecture(),
        "config": dict(config or {}),
        "optimizer": optimizer_hyperparameters(optimizer),
        "rng_state": rng.bit_generator.state,
        "history": list(history),
    }
    text = json.dumps(meta, indent=1, allow_nan=False) + "\n"
    atomic_write(directory / POINTER, lambda f: f.write(text.encode()))
    for stale in directory.glob("checkpoint-epoch*.npz"):
        if stale.name != npz_name:
            stale.unlink(missing_ok=True)
    return directory / POINTER


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON) and the arrays of the model and the optimizer."""

    path: Path  # the checkpoint.json it came from
    meta: dict
    model_state: dict  # param name -> array
    optimizer_state: dict  # optimizer.state_dict() key -> array

    @property
    def epoch(self):
        return self.meta["epoch"]

    def restore(self, model, optimizer=None, rng=None):
        """Load into ``model`` (and ``optimizer``, ``rng``); CheckpointError names any mismatch."""
        diffs = _differences(self.meta["architecture"], _json_roundtrip(model.architecture()))
        if diffs:
            raise CheckpointError(
                f"{self.path}: the checkpoint's architecture differs from the model's: " + "; ".join(diffs)
            )
        try:
            model.load_state_dict(self.model_state)
        except ValueError as err:
            raise CheckpointError(f"{self.path.parent / self.meta['npz']}: {err}") from None
        if optimizer is not None:
            saved = {k: v for k, v in self.meta["optimizer"].items() if k != "step"}
            current = {k: v for k, v in optimizer_hyperparameters(optimizer).items() if k != "step"}
            diffs = _differences(saved, _json_roundtrip(current))
            if diffs:
                raise CheckpointError(f"{self.path}: the optimizer differs from the checkpoint's: " + "; ".join(diffs))
            try:
                optimizer.load_state_dict(self.optimizer_state)
            except (KeyError, ValueError) as err:
                raise CheckpointError(f"{self.path.parent / self.meta['npz']}: optimizer state: {err}") from None
        if rng is not None:
            try:
                rng.bit_generator.state = self.meta["rng_state"]
            except (TypeError, ValueError) as err:
                raise CheckpointError(f"{self.path}: cannot restore the RNG state ({err})") from None


def load_checkpoint(path):
    """Read a checkpoint from its directory or its ``checkpoint.json``; returns a :class:`Checkpoint`.

    Raises FileNotFoundError if there is none, CheckpointError if it is corrupt or truncated.
    """
    path = Path(path)
    if path.is_dir():
        path = path / POINTER
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here (expected {POINTER} written by save_checkpoint)")
    try:
        meta = json.loads(path.read_text())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint metadata, not valid JSON ({err})") from None
    required = {"format", "npz", "npz_sha256", "epoch", "architecture", "optimizer", "rng_state"}
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or required - set(meta):
        raise CheckpointError(f"{path}: not a {FORMAT} file (expected a JSON object with keys {sorted(required)})")
    if meta.get("version") != VERSION:
        raise CheckpointError(f"{path}: checkpoint format version {meta.get('version')}, expected {VERSION}")
    npz = path.parent / meta["npz"]
    if not npz.is_file():
        raise CheckpointError(f"{npz}: missing, but {path.name} points to it")
    found = _sha256(npz)
    if found != meta["npz_sha256"]:
        raise CheckpointError(
            f"{npz}: corrupt or truncated (SHA-256 {found}, but {path.name} expects {meta['npz_sha256']})"
        )
    try:
        with np.load(npz, allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"{npz}: cannot read the arrays ({err})") from None
    split = {prefix: {k[len(prefix) + 1 :]: v for k, v in arrays.items() if k.startswith(prefix + "/")}
             for prefix in ("model", "optimizer")}  # fmt: skip
    return Checkpoint(path, meta, split["model"], split["optimizer"])
