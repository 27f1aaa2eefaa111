"""Checkpoints: a model, its optimizers and the training RNG, saved without pickle.

A checkpoint directory holds two files of tinyvae's (format version 2):

    checkpoint-epoch0003.npz   the arrays, one .npy member each (an uncompressed zip):
                                 "model/<name>"                model.state_dict(): params and buffers
                                 "optimizer/<optimizer>/<key>"  each optimizer's state_dict()
    checkpoint.json            the metadata, and the pointer to the current .npz:
        {"format": "tinyvae-checkpoint", "version": 2,
         "npz": "checkpoint-epoch0003.npz", "npz_sha256": "...", "epoch": 3,
         "model": model.config(), "architecture": model.architecture(), "config": {...},
         "optimizers": {"optimizer": {"type": "Adam", "lr": 0.001, "betas": [0.9, 0.999], "eps": 1e-08}},
         "rng_state": rng.bit_generator.state, "history": [{...}, ...]}

``optimizers`` is one optimizer (saved under the name "optimizer") or a dict name -> optimizer.

Saving never loses the last good checkpoint. Everything is built and checked first (JSON
values, NaN/Inf in any array or number), so a model that went NaN is refused before a file
is written. The .npz then gets a name that no file has yet ("checkpoint-epoch0003.npz", or
"checkpoint-epoch0003-2.npz" if that one exists), is written atomically (temporary file,
fsync, rename), and only then is ``checkpoint.json`` atomically replaced to point at it.
Last, the .npz that the previous JSON named (that exact name) is deleted, and so are the
temporary files of saves that were killed. A kill at any moment leaves the previous
checkpoint or the new one, never a mix; at worst an unreferenced .npz stays behind.

Loading trusts nothing in the files. ``checkpoint.json`` must have the keys and types
above, its "npz" must be a plain file name in the same folder and match its SHA-256. The
.npz members are opened one by one and only their .npy headers are read: unknown members,
non-numeric dtypes and shapes that do not match the member's size are refused. The data is
read by ``restore``, only for the members the model and optimizers expect, with the shapes
and dtypes they expect, so a hostile file cannot make it allocate more than the model
itself. Every problem is a CheckpointError naming the file, the key or the member.

    save_checkpoint(out, model, optimizer, epoch=3, rng=rng, config=cfg, history=hist)
    ckpt = load_checkpoint(out)          # CheckpointError if missing, corrupt or truncated
    ckpt.restore(model, optimizer, rng)  # CheckpointError if the architecture differs
    model = load_run(out)                # rebuilt from ckpt.meta["model"], in eval mode

Version-1 checkpoints (one optimizer, "optimizer/<key>" members, no "model") still load;
``load_run`` needs the "model" of version 2.
"""

import hashlib
import io
import json
import math
import os
import re
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .fileio import atomic_write, leftover_temp_files

FORMAT, VERSION = "tinyvae-checkpoint", 2
POINTER = "checkpoint.json"
NPZ_NAME = re.compile(r"checkpoint-epoch\d{4,}(?:-\d+)?\.npz")  # the names save_checkpoint gives
MAX_POINTER_BYTES = 64 << 20  # checkpoint.json is read whole; a larger one is not ours
NUMERIC_KINDS = "biuf"  # bool, signed and unsigned int, float
DEFAULT_OPTIMIZER = "optimizer"  # the name of a single optimizer
REQUIRED = {
    1: ("npz", "npz_sha256", "epoch", "architecture", "optimizer", "rng_state"),
    2: ("npz", "npz_sha256", "epoch", "model", "architecture", "config", "optimizers", "rng_state", "history"),
}


class CheckpointError(ValueError):
    """A checkpoint is missing, corrupt, truncated, hostile, or does not fit the model it is loaded into."""


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


def _differences(saved, current, where="", other="model"):
    """Paths at which two JSON values differ, e.g. ``latent_dim: checkpoint 2, model 20``."""
    if isinstance(saved, dict) and isinstance(current, dict):
        out = []
        for key in sorted(set(saved) | set(current), key=str):
            if key not in current:
                out.append(f"{where}{key}: only in the checkpoint")
            elif key not in saved:
                out.append(f"{where}{key}: only in the {other}")
            else:
                out += _differences(saved[key], current[key], f"{where}{key}.", other)
        return out
    if isinstance(saved, list) and isinstance(current, list) and len(saved) == len(current):
        out = []
        for i, (a, b) in enumerate(zip(saved, current)):
            out += _differences(a, b, f"{where.rstrip('.')}[{i}].", other)
        return out
    if saved != current:
        if isinstance(saved, list) and isinstance(current, list):
            return [f"{where.rstrip('.')}: checkpoint {_entries(saved)}, {other} {_entries(current)}"]
        return [f"{where.rstrip('.')}: checkpoint {saved!r}, {other} {current!r}"]
    return []


# --------------------------------------------------------------------------------------
# Saving
# --------------------------------------------------------------------------------------


def _plain_json(value, where):
    """``value`` in plain JSON types (numpy scalars become Python numbers); CheckpointError naming ``where``."""
    if value is None or isinstance(value, (str, bool)):
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(value):
            raise CheckpointError(f"save_checkpoint: {where}: {value} is not a finite number (JSON has no NaN/Inf)")
        return float(value)
    if isinstance(value, dict):
        keys = [k for k in value if not isinstance(k, str)]
        if keys:
            raise CheckpointError(f"save_checkpoint: {where}: keys must be strings, got {keys[0]!r}")
        return {k: _plain_json(v, f"{where}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v, f"{where}[{i}]") for i, v in enumerate(value)]
    raise CheckpointError(f"save_checkpoint: {where}: not JSON ({type(value).__name__})")


def _named_optimizers(optimizers, where):
    """``optimizers`` as a dict name -> optimizer: one optimizer is named "optimizer", None is {}."""
    if optimizers is None:
        return {}
    named = optimizers if isinstance(optimizers, dict) else {DEFAULT_OPTIMIZER: optimizers}
    for name, optimizer in named.items():
        if not isinstance(name, str) or not name or "/" in name:
            raise CheckpointError(f"{where}: optimizer names must be non-empty strings without '/', got {name!r}")
        if not all(callable(getattr(optimizer, m, None)) for m in ("config", "state_dict", "load_state_dict")):
            raise CheckpointError(f"{where}: optimizers[{name!r}] is a {type(optimizer).__name__}, not an optimizer")
    return named


def _state_arrays(model, named):
    """{"model/<name>": ..., "optimizer/<optimizer>/<key>": ...}: every array a checkpoint holds."""
    arrays = {f"model/{k}": v for k, v in model.state_dict().items()}
    for name, optimizer in named.items():
        arrays.update({f"optimizer/{name}/{k}": np.asarray(v) for k, v in optimizer.state_dict().items()})
    return arrays


def _non_finite(array):
    return array.size - int(np.count_nonzero(np.isfinite(array)))


def _is_count(value):
    """True for a non-negative integer (not a bool)."""
    return isinstance(value, (int, np.integer)) and not isinstance(value, (bool, np.bool_)) and value >= 0


def _read_pointer(path):
    """The bytes of a checkpoint.json; CheckpointError if it is too large to be one."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size > MAX_POINTER_BYTES:
            raise CheckpointError(f"{path}: over {MAX_POINTER_BYTES} bytes, not checkpoint metadata")
        return f.read()


def _previous_npz(directory):
    """The .npz that the current checkpoint.json names, if it is one of save_checkpoint's names; else None."""
    try:
        name = json.loads(_read_pointer(directory / POINTER).decode()).get("npz")
    except (OSError, ValueError, AttributeError, RecursionError):  # (CheckpointError is a ValueError)
        return None
    return name if isinstance(name, str) and NPZ_NAME.fullmatch(name) else None


def _unused_npz_name(directory, epoch):
    """``checkpoint-epoch0003.npz``, or ``-2``, ``-3``... before ``.npz``: the first name no file has."""
    stem, counter = f"checkpoint-epoch{epoch:04d}", 1
    name = f"{stem}.npz"
    while os.path.lexists(directory / name):
        counter += 1
        name = f"{stem}-{counter}.npz"
    return name


def save_checkpoint(directory, model, optimizers, *, epoch, rng, config=None, history=()):
    """Write the checkpoint of ``epoch`` into ``directory`` (created if needed); returns the JSON path.

    model: saved with ``model.state_dict()`` (parameters and buffers) and ``model.config()``.
    optimizers: one optimizer (saved as "optimizer"), a dict name -> optimizer, or None.
    epoch: a non-negative integer.
    rng: the training ``numpy.random.Generator``; its ``bit_generator.state`` is saved so a
        resumed run draws exactly what an uninterrupted one would.
    config, history: a dict of run settings and a list of per-epoch dicts, JSON values
        (numpy scalars are converted; NaN and Inf are refused).

    Everything is checked before any file is written: CheckpointError names what is wrong
    (e.g. a parameter that went NaN), and the checkpoint already in ``directory`` stays.
    """
    directory = Path(directory)
    if not _is_count(epoch):
        raise CheckpointError(f"save_checkpoint: epoch: expected a non-negative integer, got {epoch!r}")
    if not isinstance(rng, np.random.Generator):
        raise CheckpointError(f"save_checkpoint: rng: expected a numpy.random.Generator, got {rng!r}")
    if config is not None and not isinstance(config, dict):
        raise CheckpointError(f"save_checkpoint: config: expected a dict, got {type(config).__name__}")
    if not isinstance(history, (list, tuple)) or not all(isinstance(h, dict) for h in history):
        raise CheckpointError(f"save_checkpoint: history: expected a list of dicts, got {history!r:.80}")
    named = _named_optimizers(optimizers, "save_checkpoint")
    meta = {
        "format": FORMAT,
        "version": VERSION,
        "npz": None,  # set below, once the arrays are in bytes
        "npz_sha256": None,
        "epoch": int(epoch),
        "model": _plain_json(model.config(), "model.config()"),
        "architecture": _plain_json(model.architecture(), "model.architecture()"),
        "config": _plain_json(config or {}, "config"),
        "optimizers": {name: _plain_json(opt.config(), f"optimizers[{name!r}].config()")
                       for name, opt in named.items()},  # fmt: skip
        "rng_state": _plain_json(rng.bit_generator.state, "rng.bit_generator.state"),
        "history": _plain_json(list(history), "history"),
    }
    arrays = _state_arrays(model, named)
    for key, array in arrays.items():
        if not isinstance(array, np.ndarray) or array.dtype.kind not in NUMERIC_KINDS:
            found = getattr(array, "dtype", type(array).__name__)
            raise CheckpointError(f"save_checkpoint: {key}: expected a numeric array, got {found}")
        bad = _non_finite(array)
        if bad:
            raise CheckpointError(
                f"save_checkpoint: {key}: {bad} non-finite value{'s' * (bad > 1)} (NaN/Inf); nothing was written, "
                f"the last checkpoint in {directory} is unchanged"
            )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    npz_bytes = buffer.getvalue()

    directory.mkdir(parents=True, exist_ok=True)
    for leftover in leftover_temp_files(directory, rf"{re.escape(POINTER)}|{NPZ_NAME.pattern}"):
        leftover.unlink(missing_ok=True)
    previous = _previous_npz(directory)
    meta["npz"] = _unused_npz_name(directory, int(epoch))
    meta["npz_sha256"] = hashlib.sha256(npz_bytes).hexdigest()
    text = json.dumps(meta, indent=1, allow_nan=False) + "\n"
    atomic_write(directory / meta["npz"], lambda f: f.write(npz_bytes))
    atomic_write(directory / POINTER, lambda f: f.write(text.encode()))
    if previous is not None and previous != meta["npz"]:
        (directory / previous).unlink(missing_ok=True)
    return directory / POINTER


# --------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """One .npy member of the .npz, from its header: the data is not read yet."""

    name: str  # in the zip, e.g. "model/encoder.1.weight.npy"
    shape: tuple
    dtype: np.dtype
    fortran_order: bool

    @property
    def nbytes(self):
        return math.prod(self.shape) * self.dtype.itemsize


def _read_npy_header(f, name, npz, size):
    """The Member that the .npy header at the start of the stream ``f`` declares (``size`` bytes in all)."""
    try:
        version = np.lib.format.read_magic(f)
        if version not in ((1, 0), (2, 0)):
            raise ValueError(f".npy format version {version}, expected 1.0 or 2.0")
        read_header = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran_order, dtype = read_header(f)
    except ValueError as err:
        raise CheckpointError(f"{npz}: member {name!r}: not a .npy array ({err})") from None
    if dtype.kind not in NUMERIC_KINDS or dtype.fields is not None or dtype.subdtype is not None:
        raise CheckpointError(f"{npz}: member {name!r}: dtype {dtype} is not numeric (expected bool, int or float)")
    member = Member(name, tuple(shape), dtype, bool(fortran_order))
    if any(d < 0 for d in member.shape):
        raise CheckpointError(f"{npz}: member {name!r}: negative dimension in shape {member.shape}")
    held = size - f.tell()
    if held != member.nbytes:
        raise CheckpointError(
            f"{npz}: member {name!r}: declares shape {member.shape} {dtype} ({member.nbytes} bytes) but holds {held}"
        )
    return member


def _plain_file_name(name):
    return (isinstance(name, str) and name not in ("", ".", "..") and "/" not in name and "\\" not in name
            and "\0" not in name and not os.path.isabs(name))  # fmt: skip


def _check_meta(meta, path):
    """Check the JSON's keys and types (CheckpointError naming the key); returns it in version 2's shape."""
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise CheckpointError(f'{path}: not a {FORMAT} file (expected a JSON object with "format": "{FORMAT}")')
    version = meta.get("version")
    if type(version) is not int or version not in REQUIRED:
        raise CheckpointError(f"{path}: checkpoint format version {version!r}, expected 1 or 2")
    missing = [k for k in REQUIRED[version] if k not in meta]
    if missing:
        keys = ", ".join(REQUIRED[version])
        raise CheckpointError(f'{path}: missing key "{missing[0]}" (version {version} has {keys})')

    def expect(key, ok, what):
        if key in meta and not ok(meta[key]):
            raise CheckpointError(f'{path}: "{key}": expected {what}, got {meta[key]!r:.80}')

    expect("npz", _plain_file_name, f"a plain file name in the same folder as {POINTER}")
    expect("npz_sha256", lambda v: isinstance(v, str) and re.fullmatch("[0-9a-f]{64}", v), "64 hex digits")
    expect("epoch", lambda v: type(v) is int and v >= 0, "a non-negative integer")
    for key in ("model", "architecture", "config", "rng_state"):
        expect(key, lambda v: isinstance(v, dict), "a JSON object")
    expect("history", lambda v: isinstance(v, list) and all(isinstance(h, dict) for h in v), "a list of JSON objects")
    described = lambda v: isinstance(v, dict) and isinstance(v.get("type"), str)  # noqa: E731
    expect("optimizer", described, 'a JSON object {"type": ...}')
    expect("optimizers", lambda v: isinstance(v, dict) and all(map(described, v.values())) and all(v) and
           not any("/" in k for k in v), 'a JSON object name -> {"type": ...}')  # fmt: skip
    if version == 1:  # one optimizer with "beta1", "beta2" and "step" beside its settings
        old = {k: v for k, v in meta["optimizer"].items() if k != "step"}
        if "beta1" in old or "beta2" in old:
            old["betas"] = [old.pop("beta1", None), old.pop("beta2", None)]
        meta = {"config": {}, "history": [], **meta, "optimizers": {DEFAULT_OPTIMIZER: old}}
    return meta


def _member_key(name, meta):
    """The key of a member in version 2's layout ("model/<name>", "optimizer/<optimizer>/<key>"), or None."""
    if not name.endswith(".npy"):
        return None
    key = name[: -len(".npy")]
    if key.startswith("model/") and len(key) > len("model/"):
        return key
    if meta["version"] == 1:
        return f"optimizer/{DEFAULT_OPTIMIZER}/{key[len('optimizer/'):]}" if key.startswith("optimizer/") else None
    for optimizer in meta["optimizers"]:
        if key.startswith(f"optimizer/{optimizer}/") and len(key) > len(f"optimizer/{optimizer}/"):
            return key
    return None


def _read_members(npz, meta):
    """{key: Member} of every member of ``npz``, from the headers alone; unknown members are refused."""
    members = {}
    try:
        with zipfile.ZipFile(npz) as zf:
            for info in zf.infolist():
                key = _member_key(info.filename, meta)
                if key is None or key in members:
                    raise CheckpointError(
                        f"{npz}: member {info.filename!r}: unexpected (a checkpoint holds only model/<name>.npy and "
                        f"optimizer/<optimizer>/<key>.npy members, for the optimizers {sorted(meta['optimizers'])})"
                    )
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED) or info.flag_bits & 0x1:
                    raise CheckpointError(
                        f"{npz}: member {info.filename!r}: encrypted, or compressed with zip method "
                        f"{info.compress_type}; expected stored or deflated"
                    )
                with zf.open(info) as f:
                    members[key] = _read_npy_header(f, info.filename, npz, info.file_size)
    except CheckpointError:
        raise
    except (OSError, EOFError, ValueError, zipfile.BadZipFile, zlib.error) as err:
        raise CheckpointError(f"{npz}: cannot read the arrays ({err})") from None
    return members


@dataclass
class Checkpoint:
    """A loaded checkpoint: ``meta`` (the JSON, in version 2's shape) and the headers of its arrays.

    The arrays themselves are read by ``restore`` (or ``build_model``), with the shapes and
    dtypes that the model and optimizers expect.
    """

    path: Path  # the checkpoint.json it came from
    meta: dict
    npz: Path
    members: dict  # "model/<name>" or "optimizer/<optimizer>/<key>" -> Member

    @property
    def epoch(self):
        return self.meta["epoch"]

    @property
    def model_state(self):
        """{name: array} of the model, read as the file declares it (trusted files only; restore checks)."""
        keys = [k for k in self.members if k.startswith("model/")]
        return {k[len("model/") :]: v for k, v in self._read(keys).items()}

    @property
    def optimizer_state(self):
        """{"<optimizer>/<key>": array} of every optimizer, read as the file declares it (trusted files only)."""
        keys = [k for k in self.members if k.startswith("optimizer/")]
        return {k[len("optimizer/") :]: v for k, v in self._read(keys).items()}

    def _read(self, keys):
        """{key: array} for these members; each header is checked again, and the data for NaN/Inf."""
        arrays = {}
        try:
            with zipfile.ZipFile(self.npz) as zf:
                for key in keys:
                    member = self.members[key]
                    info = zf.getinfo(member.name)
                    with zf.open(info) as f:
                        if _read_npy_header(f, member.name, self.npz, info.file_size) != member:
                            raise CheckpointError(f"{self.npz}: member {member.name!r}: changed since it was loaded")
                        data = bytearray(f.read(member.nbytes))
                    order = "F" if member.fortran_order else "C"
                    array = np.frombuffer(data, member.dtype).reshape(member.shape, order=order)
                    bad = _non_finite(array)
                    if bad:
                        values = f"value{'s' * (bad > 1)}"
                        raise CheckpointError(f"{self.npz}: member {member.name!r}: {bad} non-finite {values}")
                    arrays[key] = array
        except CheckpointError:
            raise
        except (OSError, EOFError, KeyError, ValueError, zipfile.BadZipFile, zlib.error) as err:
            raise CheckpointError(f"{self.npz}: cannot read the arrays ({err})") from None
        return arrays

    def restore(self, model, optimizers=None, rng=None):
        """Load into ``model`` (and ``optimizers``, ``rng``); CheckpointError names any mismatch.

        optimizers: one optimizer, or a dict name -> optimizer with the names that were saved.
        Everything is compared (architecture, optimizer settings, each array's name, shape
        and dtype, the RNG's kind) and read before anything is changed.
        """
        diffs = _differences(self.meta["architecture"], _json_roundtrip(model.architecture()))
        if diffs:
            raise CheckpointError(
                f"{self.path}: the checkpoint's architecture differs from the model's: " + "; ".join(diffs)
            )
        named = _named_optimizers(optimizers, f"{self.path}: restore")
        if optimizers is not None and sorted(named) != sorted(self.meta["optimizers"]):
            raise CheckpointError(
                f"{self.path}: optimizers: checkpoint {sorted(self.meta['optimizers'])}, given {sorted(named)}"
            )
        for name, optimizer in named.items():
            diffs = _differences(self.meta["optimizers"][name], _json_roundtrip(optimizer.config()), other="given")
            if diffs:
                raise CheckpointError(
                    f"{self.path}: optimizer {name!r} differs from the checkpoint's: " + "; ".join(diffs)
                )
        expected = _state_arrays(model, named)
        parts = ("model/", *(f"optimizer/{name}/" for name in named))
        held = [k for k in self.members if k.startswith(parts)]
        for key in held:
            member, want = self.members[key], expected.get(key)
            owner = "model" if key.startswith("model/") else "optimizer"
            if want is None:
                raise CheckpointError(f"{self.npz}: member {member.name!r}: unexpected, the {owner} has no {key}")
            if (member.shape, member.dtype) != (want.shape, want.dtype):
                raise CheckpointError(
                    f"{self.npz}: member {member.name!r}: checkpoint {member.shape} {member.dtype}, "
                    f"{owner} {want.shape} {want.dtype}"
                )
        missing = sorted(set(expected) - set(held))
        if missing:
            raise CheckpointError(f"{self.npz}: no member for {', '.join(missing[:3])}{' ...' * (len(missing) > 3)}")
        if rng is not None:
            try:  # on a scratch bit generator of the same kind first, so a bad state changes nothing
                type(rng.bit_generator)().state = self.meta["rng_state"]
            except (TypeError, ValueError, KeyError) as err:
                kind = type(rng.bit_generator).__name__
                raise CheckpointError(f'{self.path}: "rng_state": cannot restore it into {kind} ({err})') from None
        arrays = self._read(held)
        try:
            model.load_state_dict({k[len("model/") :]: v for k, v in arrays.items() if k.startswith("model/")})
            for name, optimizer in named.items():
                prefix = f"optimizer/{name}/"
                optimizer.load_state_dict({k[len(prefix) :]: v for k, v in arrays.items() if k.startswith(prefix)})
        except ValueError as err:
            raise CheckpointError(f"{self.npz}: {err}") from None
        if rng is not None:
            rng.bit_generator.state = self.meta["rng_state"]

    def build_model(self):
        """The model, rebuilt with ``build_vae(**meta["model"])``, restored, and in eval mode."""
        from .presets import build_vae

        config = self.meta.get("model")
        if not config:
            why = "a version 1 checkpoint" if self.meta["version"] == 1 else "the saved model's config() was {}"
            raise CheckpointError(
                f"{self.path}: no model config to rebuild the model from ({why}); build the model as it was "
                f"trained and call load_checkpoint({str(self.path.parent)!r}).restore(model)"
            )
        try:
            model = build_vae(**config, rng=np.random.default_rng(0))
        except (TypeError, ValueError) as err:
            raise CheckpointError(f'{self.path}: "model": cannot rebuild the model from {config} ({err})') from None
        self.restore(model)
        if hasattr(model, "eval"):
            model.eval()
        return model


def load_checkpoint(path):
    """Read a checkpoint from its directory or its ``checkpoint.json``; returns a :class:`Checkpoint`.

    Reads the JSON, checks the .npz's SHA-256 and its members' headers; the arrays are read by
    ``restore``. Raises FileNotFoundError if there is none, CheckpointError if it is corrupt,
    truncated or not what save_checkpoint writes.
    """
    path = Path(path)
    if path.is_dir():
        path = path / POINTER
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no checkpoint here (expected {POINTER} written by save_checkpoint)")
    try:
        meta = json.loads(_read_pointer(path).decode())
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as err:
        raise CheckpointError(f"{path}: corrupt or truncated checkpoint metadata, not valid JSON ({err})") from None
    meta = _check_meta(meta, path)
    npz = path.parent / meta["npz"]
    if not npz.is_file():
        raise CheckpointError(f"{npz}: missing, but {path.name} points to it")
    found = _sha256(npz)
    if found != meta["npz_sha256"]:
        raise CheckpointError(
            f"{npz}: corrupt or truncated (SHA-256 {found}, but {path.name} expects {meta['npz_sha256']})"
        )
    return Checkpoint(path, meta, npz, _read_members(npz, meta))


def load_run(directory):
    """The model trained in ``directory``, rebuilt from its checkpoint, in eval mode.

    For the checkpoint's metadata too (config, history, epoch), use
    ``ckpt = load_checkpoint(directory); model = ckpt.build_model()``.
    """
    return load_checkpoint(directory).build_model()
