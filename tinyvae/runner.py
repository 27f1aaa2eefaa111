"""A training run from the command line: flags, resume, time limit, progress, pictures, summary.

An example script gives the runner what is specific to it and nothing else:

    FLAGS = [Flag("--arch", "conv", "conv or mlp", choices=("conv", "mlp")),
             Flag("--latent-dim", lambda cfg: 2 if cfg["arch"] == "conv" else 20, "size of z", int, low=1,
                  default_text="2 for conv, 20 for mlp")]

    def load_data(cfg):       # -> Data(train_x, test_x, test_labels, class_names, transform, notes)
    def build_model(cfg, rng):  # -> a model (tinyvae.build_vae(...))

    def main(argv=None):
        return run(argv, description=__doc__, flags=FLAGS, defaults={"out": "runs/mnist", "epochs": 3},
                   load_data=load_data, build_model=build_model, pictures=tinyvae.pictures.PICTURES)

The runner adds the common flags (COMMON_FLAGS, and --resume, --overwrite, --debug), then:
chooses the backend (--backend > TINYVAE_BACKEND > a resumed run's > numba if importable, else numpy), locks
--out against a second writer, refuses to replace a run there unless --resume or --overwrite,
trains one epoch at a time with --objective (elbo or iwae with --k samples) and beta
(--beta, warmed up linearly over --warmup-epochs), with progress inside each epoch (a NaN or
a non-finite result stops the run before its checkpoint, so the last good one stays),
evaluates the test ELBO, the KL per latent dimension and the active units every epoch and
the IWAE bound at the end, and writes everything atomically into --out.

A conditional model (``model.num_classes`` = K) gets the labels: the training labels in
training, the test labels in every evaluation (the ELBO and IWAE bound are then those of
log p(x | y)); its per-epoch frames hold one row per class with the same z per column. An
example that adds JUDGE_FLAGS lets --judge name a classifier run (examples/classifier.py)
that rates the conditional model's samples at the end ("label accuracy",
tinyvae.evaluate.label_accuracy). Into --out go:

    checkpoint.json + checkpoint-epochNNNN.npz   the latest epoch (tinyvae/checkpoint.py)
    metrics.jsonl            one JSON line per optimizer step: epoch, step, n_steps, each term, images_per_s
    samples-epochNNN.png     decoded samples from one fixed z after each epoch (000: before training)
    samples.gif              those frames, animated
    <pictures>               the pictures given (tinyvae/pictures.py), drawn at the end
    summary.json             config, per-epoch history, test ELBO, IWAE bound, KL per latent dimension,
                             active units, timings, files
    tinyvae.lock             held (flock) while a run writes into --out

Expected failures (bad flags or data, checkpoint errors, a NaN stop) print one message and
exit non-zero; --debug or TINYVAE_DEBUG=1 keeps the traceback.
"""

import argparse
import fcntl
import json
import math
import os
import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .backend import CHOICES, get_backend, set_backend
from .checkpoint import CheckpointError, load_checkpoint, load_run, save_checkpoint
from .distributions import check_labels
from .evaluate import ACTIVE_UNIT_THRESHOLD, check_judge, label_accuracy, latent_statistics
from .fileio import atomic_write
from .objectives import elbo, iwae_bound
from .optim import Adam
from .pictures import PictureRun, Skip, check_channels, save_figure, save_frame, save_gif
from .progress import Progress
from .train import NonFiniteLossError, linear_warmup, train

LOCK_NAME = "tinyvae.lock"
EVAL_SEED = 1  # seeds the eps of every evaluation, so epochs are compared on the same draws
ELBO_BATCH, IWAE_BATCH = 500, 250  # test images per evaluation batch
FRAME_SAMPLES, FRAME_COLS = 64, 8  # the per-epoch sample grid
FRAME_NAME = re.compile(r"samples-epoch(\d{3,})\.png")


class RunError(Exception):
    """An expected failure: the message says what went wrong and what to do; no traceback needed."""


@dataclass
class Flag:
    """A command-line flag; ``default`` may be a function of the other settings (cfg -> value)."""

    name: str  # "--latent-dim"; its setting is cfg["latent_dim"]
    default: object
    help: str
    type: type = str  # str, int or float; bool: a switch, False unless given
    choices: tuple = None
    low: float = None  # numbers: at least this (or above it, if strict); always finite
    strict: bool = False
    run_setting: bool = True  # defines the training run: --resume refuses to change it
    default_text: str = None  # how --help shows a computed default

    @property
    def key(self):
        return self.name.lstrip("-").replace("-", "_")

    def parse(self, text):
        """argparse's type: the value, or ArgumentTypeError saying what was expected."""
        value = self.type(text)  # ValueError -> argparse's "invalid int value"
        if self.type in (int, float):
            bound = "" if self.low is None else f" {'>' if self.strict else '>='} {self.low:g}"
            if not math.isfinite(value) or (self.low is not None and (value < self.low or
                                                                        (self.strict and value == self.low))):
                raise argparse.ArgumentTypeError(f"expected a finite number{bound}, got {text}")
        return value


COMMON_FLAGS = [
    Flag("--epochs", 10, "train up to this epoch (with --resume: the total, not the number to add)", int, low=0,
         run_setting=False),
    Flag("--batch-size", 64, "images per optimizer step", int, low=1),
    Flag("--lr", 1e-3, "Adam learning rate", float, low=0, strict=True),
    Flag("--lr-decay", 1.0, "multiply the learning rate by this after every epoch: epoch e trains at "
         "lr * lr_decay**(e - 1) (1: constant)", float, low=0, strict=True),
    Flag("--beta", 1.0, "weight of the KL term (1: the ELBO; beta-VAE otherwise)", float, low=0),
    Flag("--warmup-epochs", 0.0, "KL warm-up: beta rises linearly from 0 to --beta over this many epochs, step by "
         "step (0: no warm-up)", float, low=0),
    Flag("--objective", "elbo", "training objective: elbo (one sample per image) or iwae (the k-sample "
         "importance-weighted bound of Burda et al., --k samples)", choices=("elbo", "iwae")),
    Flag("--k", 5, "importance samples per training image for --objective iwae", int, low=1),
    Flag("--seed", 0, "seeds initialization, shuffling, data sampling, eps and pictures", int, low=0),
    Flag("--backend", None, "kernel backend (default: TINYVAE_BACKEND if set, else numba if importable, else numpy)",
         choices=CHOICES, run_setting=False),
    Flag("--out", "runs/run", "directory for checkpoints, pictures, metrics.jsonl and summary.json", run_setting=False),
    Flag("--iwae-k", 5, "importance samples for the final IWAE bound on log p(x); 0 skips it", int, low=0,
         run_setting=False),
    Flag("--train-size", None, "use only the first N training images, for quick runs (default: all)", int, low=1),
    Flag("--test-size", None, "use only the first N test images, for quick runs (default: all)", int, low=1),
    Flag("--time-limit", None, "stop after the epoch that crosses this many minutes of training in this invocation; "
         "--resume continues (default: no limit)", float, low=0, strict=True, run_setting=False),
]  # fmt: skip


JUDGE_FLAGS = [
    Flag("--judge", None, "a classifier run (examples/classifier.py --out DIR) that classifies the conditional "
         "model's samples at the end: the label accuracy (default: none)", run_setting=False),
    Flag("--judge-samples", 1000, "samples per class for --judge", int, low=1, run_setting=False),
]  # fmt: skip


@dataclass
class Data:
    """What ``load_data(cfg)`` returns; the runner keeps the first --train-size / --test-size images."""

    train_x: np.ndarray  # (N, ...): the model's input, or what ``transform`` turns into it
    test_x: np.ndarray  # (N, C, H, W): the model's input, in [0, 1] for the pictures
    test_labels: np.ndarray = None  # (N,) classes, to colour the latent picture
    class_names: list = None
    transform: object = None  # transform(batch, rng) -> the model's input, per training batch
    notes: dict = field(default_factory=dict)  # e.g. {"binarization": "..."}: printed, and saved in summary.json
    cmap: str = "gray"  # one-channel pictures: "gray" or "gray_r" (MNIST-style ink)
    train_labels: np.ndarray = None  # (N,) classes of train_x, for conditional models


def plural(n, word):
    return f"{n} {word}{'' if n == 1 else 's'}"


def minutes(seconds):
    return f"{int(seconds // 60)}m{seconds % 60:04.1f}s"


def human_bytes(n):
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024


# --------------------------------------------------------------------------------------
# Settings
# --------------------------------------------------------------------------------------


def parse_args(argv, description, flags, defaults):
    """Returns (the flags given on the command line, the switches --resume/--overwrite/--debug)."""
    parser = argparse.ArgumentParser(
        description=description.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="\n\n".join(description.split("\n\n")[1:]), argument_default=argparse.SUPPRESS,
    )  # fmt: skip
    for flag in flags:
        if flag.type is bool:
            parser.add_argument(flag.name, action="store_true", help=flag.help)
            continue
        default = defaults.get(flag.key, flag.default)
        shown = flag.default_text or ("" if default is None else default)
        parser.add_argument(flag.name, type=flag.parse, choices=flag.choices,
                            help=f"{flag.help} (default: {shown})" if shown != "" else flag.help)  # fmt: skip
    parser.add_argument("--resume", action="store_true", default=False,
                        help="continue from the checkpoint in --out with its settings; flags given again must "
                        f"agree, except {', '.join(f.name for f in flags if not f.run_setting)}")  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", default=False,
                        help="start a new run in an --out that holds one (its checkpoint and outputs are replaced)")
    parser.add_argument("--debug", action="store_true", default=False,
                        help="show the traceback of an expected error (also: TINYVAE_DEBUG=1)")
    explicit = vars(parser.parse_args(argv))
    switches = {k: explicit.pop(k) for k in ("resume", "overwrite", "debug")}
    return explicit, switches


def choose_backend(flag, saved=None):
    """--backend > TINYVAE_BACKEND > the resumed run's > numba if importable, else numpy; returns why, in a line."""
    env = os.environ.get("TINYVAE_BACKEND", "")
    if flag is not None:
        name, why = flag, "--backend"
    elif env:
        if env not in CHOICES:
            raise RunError(f"TINYVAE_BACKEND={env}: unknown backend; expected one of {', '.join(CHOICES)} "
                           "(or unset it: auto, numba if importable, else numpy)")  # fmt: skip
        name, why = env, f"TINYVAE_BACKEND={env}"
    elif saved is not None:
        name, why = saved, "the resumed run's"
    else:
        name, why = "auto", "default"
    try:
        set_backend(name)
    except ImportError as err:
        raise RunError(f"{why}: {err}") from err
    if name == "auto":
        return f"backend: {get_backend()} (auto: numba {'is' if get_backend() == 'numba' else 'is not'} importable)"
    return f"backend: {name} ({why})"


def resolve_config(explicit, resume, out, flags, defaults):
    """Defaults < the checkpoint's config (with --resume) < the flags given; returns (cfg, checkpoint or None)."""
    base = {f.key: defaults.get(f.key, f.default) for f in flags}
    ckpt, saved = None, {}
    if resume:
        try:
            ckpt = load_checkpoint(out)
        except FileNotFoundError as err:
            raise RunError(f"--resume: {err}; run without --resume to start a new run") from err
        except CheckpointError as err:
            raise RunError(f"--resume: {err}") from err
        saved = ckpt.meta["config"]
        conflicts = [f"{f.name} {explicit[f.key]} (checkpoint: {saved.get(f.key)})"
                     for f in flags if f.run_setting and f.key in explicit and explicit[f.key] != saved.get(f.key)]  # fmt: skip
        if conflicts:
            raise RunError(f"--resume: {ckpt.path} was trained with other settings: {', '.join(conflicts)}; "
                           "drop those flags, or start a new run with another --out")  # fmt: skip
    cfg = {**base, **saved, **explicit, "out": str(out)}
    for f in flags:  # computed defaults, e.g. a latent size per architecture
        if callable(cfg[f.key]):
            cfg[f.key] = cfg[f.key](cfg)
    return cfg, ckpt


def check_iwae_memory(k, n_test):
    """Refuse an --iwae-k whose (k, batch) float64 weights (and their temporaries) exceed half the memory."""
    if k == 0:
        return
    batch = min(IWAE_BATCH, n_test)
    needed = 3 * 8 * k * batch  # log_w (k, batch) float64, and two temporaries of its size
    total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    if needed > total // 2:
        most = total // 2 // (3 * 8 * batch)
        raise RunError(f"--iwae-k {k}: the IWAE bound needs about {human_bytes(needed)} for a batch of {batch} test "
                       f"images x {k} samples, more than half of this machine's {human_bytes(total)} of memory; "
                       f"use --iwae-k {most} or less (0 skips it)")  # fmt: skip


# --------------------------------------------------------------------------------------
# The output folder
# --------------------------------------------------------------------------------------


class OutputLock:
    """An exclusive flock on --out/tinyvae.lock; the OS releases it when the process ends, even if killed."""

    def __init__(self, out):
        self.path = Path(out) / LOCK_NAME

    def __enter__(self):
        try:  # O_NOFOLLOW: a symbolic link planted here is refused, not followed
            self.fd = os.open(self.path, os.O_CREAT | os.O_RDWR | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as err:
            raise RunError(f"{self.path}: cannot open the lock file ({err.strerror}); remove it if it is "
                           "not a plain file") from err  # fmt: skip
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.fd)
            raise RunError(f"another run is writing into {self.path.parent} (it holds {self.path}); wait for it "
                           "to finish, or choose another --out") from None  # fmt: skip
        return self

    def __exit__(self, *exc):
        os.close(self.fd)  # releases the lock; the empty file stays (deleting it would race another run)
        return False


def refuse_to_replace(out, resume, overwrite):
    """A new run must not silently replace the checkpoint of another one."""
    if resume and overwrite:
        raise RunError("--resume and --overwrite exclude each other: --resume continues the run in --out, "
                       "--overwrite replaces it")  # fmt: skip
    pointer = out / "checkpoint.json"
    if resume or overwrite or not (pointer.exists() or pointer.is_symlink()):
        return
    try:
        held = f"a run (epoch {load_checkpoint(out).epoch})"
    except (OSError, CheckpointError):
        held = "a checkpoint (unreadable)"
    raise RunError(f"{out} already holds {held}; --resume continues it, --overwrite starts a new run in its place "
                   "(replacing its checkpoint and outputs), or choose another --out")  # fmt: skip


def remove_outputs(out, picture_names, after_epoch=None):
    """Delete this runner's own outputs by exact name (all, or only frames after ``after_epoch``)."""
    frames = [p for p in out.iterdir() if FRAME_NAME.fullmatch(p.name)]
    if after_epoch is not None:
        stale = [p for p in frames if int(FRAME_NAME.fullmatch(p.name)[1]) > after_epoch]
    else:
        names = {*picture_names, "summary.json", "metrics.jsonl", "samples.gif"}
        stale = frames + [out / name for name in names if (out / name).exists() or (out / name).is_symlink()]
    for path in stale:
        path.unlink()


def why_no_pictures(test_x):
    """None if pictures can be drawn; else why not (matplotlib and Pillow are the optional "plot" extra)."""
    try:
        import matplotlib  # noqa: F401
        import PIL  # noqa: F401
    except ImportError as err:
        return f"{err.name} is not installed (pip install 'tinyvae[plot]')"
    try:
        check_channels(test_x)
    except Skip as why:
        return str(why)
    return None


def write_text(path, text):
    atomic_write(path, lambda f: f.write(text.encode()))


def read_metrics(out, up_to_epoch):
    """The metrics log of the run being resumed, cut after ``up_to_epoch`` (later entries are from lost work)."""
    path = out / "metrics.jsonl"
    if not path.is_file() or path.is_symlink():
        return []
    try:
        entries = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunError(f"--resume: {path}: not a metrics log ({err}); move it away to start the log afresh") from err
    return [m for m in entries if m["epoch"] <= up_to_epoch]


# --------------------------------------------------------------------------------------
# The run
# --------------------------------------------------------------------------------------


def lr_of_epoch(cfg, epoch):
    """Epoch e trains at lr * lr_decay^(e - 1) (--lr-decay); a fresh run's optimizer (epoch 0) at lr."""
    return cfg["lr"] * cfg["lr_decay"] ** max(epoch - 1, 0)


def run(argv=None, *, description, flags, load_data, build_model, pictures, defaults=None):
    """Parse ``argv``, train, evaluate, draw; returns the summary dict (also written to summary.json).

    Expected errors exit with one message (SystemExit); --debug or TINYVAE_DEBUG=1 raises them instead.
    """
    flags = [*flags, *COMMON_FLAGS]
    explicit, switches = parse_args(argv, description, flags, defaults or {})
    debug = switches["debug"] or os.environ.get("TINYVAE_DEBUG") == "1"
    try:
        with np.errstate(all="ignore"):  # non-finite values are checked and reported, not warned about
            return _run(explicit, switches, flags, defaults or {}, load_data, build_model, pictures)
    except RunError as err:
        if debug:
            raise err.__cause__ or err
        sys.exit(str(err))
    except KeyboardInterrupt:
        if debug:
            raise
        print("\ninterrupted; the last checkpoint written is intact: --resume continues from it", file=sys.stderr)
        sys.exit(130)


def _run(explicit, switches, flags, defaults, load_data, build_model, pictures):
    out = Path(explicit.get("out", defaults.get("out", "runs/run")))
    refuse_to_replace(out, switches["resume"], switches["overwrite"])
    out.mkdir(parents=True, exist_ok=True)
    with OutputLock(out):
        refuse_to_replace(out, switches["resume"], switches["overwrite"])  # again, now that no one else writes
        return _locked_run(out, explicit, switches["resume"], flags, defaults, load_data, build_model, pictures)


def _load(load_data, cfg):
    try:
        data = load_data(cfg)
    except (OSError, ValueError) as err:  # missing files, download failures, corrupt or wrong-format data
        raise RunError(f"data: {err}") from err
    data.train_x = data.train_x[: cfg["train_size"]]
    data.test_x = data.test_x[: cfg["test_size"]]
    if data.test_labels is not None:
        data.test_labels = data.test_labels[: cfg["test_size"]]
    if data.train_labels is not None:
        data.train_labels = data.train_labels[: cfg["train_size"]]
    return data


def _evaluate(label, fn, x, batch_size, progress, y=None):
    """Mean over x of fn(batch, its labels or None) per example, batch by batch, with progress."""
    starts = range(0, len(x), batch_size)
    progress.start(label, len(starts), unit="batch")
    values = []
    for i, start in enumerate(starts, 1):
        values.append(fn(x[start : start + batch_size], None if y is None else y[start : start + batch_size]))
        progress.update(i)
    progress.finish()
    return float(np.concatenate(values).mean())


def check_data_fits(model, data):
    """The test images, and a transformed training image, must be what the model takes: say so before training."""
    rng = np.random.default_rng(0)  # not the training RNG: checking changes nothing in the run
    first = data.train_x[:1] if data.transform is None else data.transform(data.train_x[:1], rng)
    expected = f"(N, {', '.join(map(str, model.input_shape))}) {np.dtype(model.dtype).name}"
    for what, x in (("the test images", data.test_x), ("the training images (after the transform)", first)):
        if x.shape[1:] != model.input_shape or x.dtype != model.dtype:
            raise RunError(f"data: {what} are {x.shape} {x.dtype}, but the model takes {expected}; "
                           "load_data must return the model's shape and dtype")  # fmt: skip


def check_labels_fit(model, data):
    """A conditional model needs a label in [0, num_classes) for each training and test image, before training."""
    k = getattr(model, "num_classes", None)
    if k is None:
        return
    for what, labels, n in (("training", data.train_labels, len(data.train_x)),
                            ("test", data.test_labels, len(data.test_x))):  # fmt: skip
        if labels is None:
            raise RunError(f"data: the model is conditional (num_classes={k}), but load_data gave no {what} labels")
        try:
            check_labels(labels, n, k, f"data: the {what} labels")
        except ValueError as err:
            raise RunError(str(err)) from err


def load_judge(directory, model):
    """The classifier run in --judge, checked against the model before training; RunError if it cannot judge."""
    try:
        judge = load_run(directory)
        check_judge(model, judge)
    except FileNotFoundError as err:
        raise RunError(f"--judge {directory}: {err}; train a classifier there first (examples/classifier.py "
                       f"--out {directory})") from err  # fmt: skip
    except ValueError as err:  # CheckpointError too
        raise RunError(f"--judge {directory}: {err}") from err
    return judge


def loss_kwargs(cfg):
    """The objective's arguments for ``model.loss_and_grads``, from --objective and --k."""
    return {"objective": "iwae", "k": cfg["k"]} if cfg["objective"] == "iwae" else {}


def _warm_up_numba(model, data, cfg, train_y, test_y):
    """Compile the Numba kernels on two images before the clock starts; says so (first run only, cached after)."""
    print("compiling Numba kernels (first run only, ~15 s)", flush=True)
    started = time.perf_counter()
    rng = np.random.default_rng(0)  # not the training RNG: warming up changes nothing in the run
    batch = data.train_x[:2] if data.transform is None else data.transform(data.train_x[:2], rng)
    model.loss_and_grads(batch, rng=rng, beta=cfg["beta"], **loss_kwargs(cfg), **({} if train_y is None else
                                                                                   {"y": train_y[:2]}))  # fmt: skip
    Adam({k: v.copy() for k, v in model.params.items()}, lr=cfg["lr"]).step(model.grads)
    elbo(model, data.test_x[:2], rng, None if test_y is None else test_y[:2])
    print(f"Numba kernels ready in {time.perf_counter() - started:.1f} s", flush=True)


def _non_finite(model, test_elbo):
    """What is not finite after an epoch ("" if all is well)."""
    bad = [name for name, p in model.params.items() if not np.all(np.isfinite(p))]
    problems = [f"the parameters {', '.join(bad[:3])}{' ...' if len(bad) > 3 else ''} are not finite"] if bad else []
    if not math.isfinite(test_elbo):
        problems.append(f"the test ELBO is {test_elbo}, not finite")
    return "; ".join(problems)


def _locked_run(out, explicit, resume, flags, defaults, load_data, build_model, pictures):
    cfg, ckpt = resolve_config(explicit, resume, out, flags, defaults)
    print(choose_backend(explicit.get("backend"), ckpt and ckpt.meta["config"].get("backend")), flush=True)
    cfg["backend"] = backend = get_backend()  # saved: a resumed run keeps it unless told otherwise
    data = _load(load_data, cfg)
    check_iwae_memory(cfg["iwae_k"], len(data.test_x))
    notes = ", ".join(f"{k}: {v}" for k, v in data.notes.items())
    print(f"data: {len(data.train_x)} training and {len(data.test_x)} test images{', ' + notes if notes else ''}")

    # Model, optimizer and the RNGs, all from --seed: init, training (shuffling, transform, eps), pictures, frames.
    init_rng, train_rng, picture_rng, frame_rng = (np.random.default_rng(s)
                                                   for s in np.random.SeedSequence(cfg["seed"]).spawn(4))  # fmt: skip
    model = build_model(cfg, init_rng).eval()  # evaluation mode (BatchNorm: running statistics), but in train()
    optimizer = Adam(model.params, lr=cfg["lr"])
    saved_cfg = {k: v for k, v in cfg.items() if k != "out"}
    check_data_fits(model, data)
    check_labels_fit(model, data)
    classes = getattr(model, "num_classes", None)  # a conditional model is given the labels y
    train_y, test_y = (data.train_labels, data.test_labels) if classes else (None, None)
    judge = None
    if cfg.get("judge"):
        judge = load_judge(cfg["judge"], model)
    no_pictures = why_no_pictures(data.test_x)
    if no_pictures:
        print(f"no pictures: {no_pictures}; training, metrics.jsonl and summary.json go on")

    frame_z = frame_rng.standard_normal((FRAME_SAMPLES, model.latent_dim), dtype=model.dtype)  # one fixed z per run

    if classes:  # one row per class, the same z in each column: (classes * FRAME_COLS, L) and labels
        frame_z, frame_y = np.tile(frame_z[:FRAME_COLS], (classes, 1)), np.repeat(np.arange(classes), FRAME_COLS)
    else:
        frame_y = None

    def save_epoch_frame(epoch):  # decoded samples of one fixed z (and y), to watch the decoder learn
        if not no_pictures:
            save_frame(out / f"samples-epoch{epoch:03d}.png", model.mean(model.decode(frame_z, frame_y)), FRAME_COLS,
                       data.cmap)  # fmt: skip

    if ckpt is not None:
        optimizer.lr = lr_of_epoch(cfg, ckpt.epoch)  # the checkpoint's: the last epoch it finished trained at that rate
        try:
            ckpt.restore(model, optimizer, train_rng)
        except CheckpointError as err:
            raise RunError(f"--resume: {err}") from err
        history, start_epoch = ckpt.meta["history"], ckpt.epoch
        metrics = read_metrics(out, start_epoch)
        remove_outputs(out, pictures, after_epoch=start_epoch)
        print(f"resuming {ckpt.path} after epoch {start_epoch}")
    else:
        history, start_epoch, metrics = [], 0, []
        remove_outputs(out, pictures)
        save_checkpoint(out, model, optimizer, epoch=0, rng=train_rng, config=saved_cfg, history=history)
        save_epoch_frame(0)
        print(f"new run in {out}")
    settings = ", ".join(f"{k} {v}" for k, v in model.config().items())
    objective = "ELBO" if cfg["objective"] == "elbo" else f"IWAE bound, k={cfg['k']}"
    warmup = f" (warmed up over {cfg['warmup_epochs']:g} epochs)" if cfg["warmup_epochs"] else ""
    print(f"model: {settings}; {sum(p.size for p in model.params.values())} parameters; Adam lr {cfg['lr']}, "
          f"batch {cfg['batch_size']}, objective {objective}, beta {cfg['beta']}{warmup}")  # fmt: skip
    if backend == "numba" and start_epoch < cfg["epochs"]:
        _warm_up_numba(model, data, cfg, train_y, test_y)

    progress = Progress()
    n_train, batch_size = len(data.train_x), cfg["batch_size"]
    n_steps = -(-n_train // batch_size)
    last_step = [None]
    beta = linear_warmup(cfg["beta"], cfg["warmup_epochs"])  # a function of the step: resumes exactly

    def on_batch(epoch, step, n_steps, terms):
        now = time.perf_counter()
        images = min(batch_size, n_train - (step - 1) * batch_size)
        metrics.append({"epoch": epoch, "step": step, "n_steps": n_steps, **terms,
                        **({"beta": beta(epoch, step, n_steps)} if cfg["warmup_epochs"] else {}),
                        "images_per_s": images / (now - last_step[0])})  # fmt: skip
        last_step[0] = now
        progress.on_batch(epoch, step, n_steps, terms, epochs=cfg["epochs"])

    def evaluate_elbo():
        rng = np.random.default_rng(EVAL_SEED)
        return _evaluate("test ELBO", lambda b, yb: elbo(model, b, rng, yb), data.test_x, ELBO_BATCH, progress, test_y)

    # Training: one call of train per epoch, then evaluation, checks, and a checkpoint.
    log_lines = []  # metrics.jsonl's lines, each step serialized once (not the whole log every epoch)
    started = time.perf_counter()
    for epoch in range(start_epoch + 1, cfg["epochs"] + 1):
        last_step[0] = time.perf_counter()
        optimizer.lr = lr_of_epoch(cfg, epoch)  # a function of the epoch: resumes exactly
        model.train()  # BatchNorm: batch statistics, running ones updated
        try:
            (stats,) = train(model, optimizer, data.train_x, epochs=epoch, start_epoch=epoch - 1,
                             batch_size=batch_size, rng=train_rng, beta=beta, labels=train_y,
                             loss_kwargs=loss_kwargs(cfg), transform=data.transform, on_batch=on_batch)  # fmt: skip
        except NonFiniteLossError as err:
            progress.finish()
            raise RunError(f"{err}\nThe last good checkpoint (epoch {epoch - 1}) is intact: "
                           f"{out / 'checkpoint.json'}") from err  # fmt: skip
        terms = [k for k in stats if k not in ("epoch", "loss", "seconds", "images_per_s")]  # the model's own
        stats["beta"] = beta(epoch, n_steps, n_steps)  # at the epoch's last step
        stats["lr"] = optimizer.lr
        model.eval()
        eval_started = time.perf_counter()
        stats["test_elbo"] = evaluate_elbo()
        problem = _non_finite(model, stats["test_elbo"])
        if problem:
            raise RunError(f"epoch {epoch}: {problem} (the training diverged on its last steps; lower --lr); stopped "
                           f"before writing its checkpoint.\nThe last good checkpoint (epoch {epoch - 1}) is intact: "
                           f"{out / 'checkpoint.json'}")  # fmt: skip
        stats.update(latent_statistics(model, data.test_x, ELBO_BATCH, y=test_y))
        stats["eval_seconds"] = time.perf_counter() - eval_started
        stats["wall_seconds"] = stats["seconds"] + stats["eval_seconds"]
        history.append(stats)
        save_checkpoint(out, model, optimizer, epoch=epoch, rng=train_rng, config=saved_cfg, history=history)
        log_lines.extend(json.dumps(m, allow_nan=False) + "\n" for m in metrics[len(log_lines) :])  # this epoch's
        write_text(out / "metrics.jsonl", "".join(log_lines))
        save_epoch_frame(epoch)
        elapsed = time.perf_counter() - started
        eta = elapsed / (epoch - start_epoch) * (cfg["epochs"] - epoch)
        warming = f", beta {stats['beta']:.3g}" if cfg["warmup_epochs"] else ""
        print(f"epoch {epoch:3d}/{cfg['epochs']}  train loss {stats['loss']:7.2f} "
              f"({', '.join(f'{k} {stats[k]:.2f}' for k in terms)}{warming})  test ELBO {stats['test_elbo']:8.2f}  "
              f"active units {stats['active_units']}/{model.latent_dim}  "
              f"{stats['images_per_s']:6.0f} img/s  {stats['wall_seconds']:5.1f}s  ETA {minutes(eta)}",
              flush=True)  # fmt: skip
        if cfg["time_limit"] and elapsed > 60 * cfg["time_limit"] and epoch < cfg["epochs"]:
            print(f"time limit of {cfg['time_limit']:g} minutes reached after epoch {epoch}; --resume continues")
            break

    frames = sorted((p for p in out.iterdir() if FRAME_NAME.fullmatch(p.name)),
                    key=lambda p: int(FRAME_NAME.fullmatch(p.name)[1]))  # fmt: skip
    if frames:
        save_gif(out / "samples.gif", frames)

    # Evaluation on the whole test set: the ELBO, and the tighter importance-weighted bound.
    test_elbo = history[-1]["test_elbo"] if history else evaluate_elbo()
    latents = latent_statistics(model, data.test_x, ELBO_BATCH, y=test_y)
    iwae = None
    if cfg["iwae_k"] > 0:
        iwae_started, rng, k = time.perf_counter(), np.random.default_rng(EVAL_SEED), cfg["iwae_k"]
        value = _evaluate(f"IWAE bound (k={k})", lambda b, yb: iwae_bound(model, b, k, rng, yb), data.test_x,
                          IWAE_BATCH, progress, test_y)  # fmt: skip
        iwae = {"k": k, "log_px_bound": value, "seconds": time.perf_counter() - iwae_started}
    judged = None
    if judge is not None:  # E[x | z, y] for judge_samples z ~ N(0, I) per class, classified by the judge
        judge_started, n = time.perf_counter(), cfg["judge_samples"]
        print(f"label accuracy: classifying {n} samples of each of {classes} classes with {cfg['judge']}", flush=True)
        judged = {**label_accuracy(model, judge, n, np.random.default_rng(EVAL_SEED)), "judge": str(cfg["judge"]),
                  "samples": "E[x | z, y], z ~ N(0, I): the decoder's pixel probabilities, not binarized",
                  "seconds": time.perf_counter() - judge_started}  # fmt: skip

    if no_pictures:
        drawn, skipped = [], {name: no_pictures for name in [*pictures, "samples-epochNNN.png", "samples.gif"]}
    else:
        drawn, skipped = draw_pictures(out, pictures, PictureRun(
            model, data.test_x, picture_rng, data.test_labels, data.class_names, history, metrics, data.cmap, notes),
            progress)  # fmt: skip
    written = [p.name for p in frames] + (["samples.gif"] if frames else []) + [*drawn, "summary.json"]
    if metrics:
        written.insert(0, "metrics.jsonl")
    summary = {
        "config": saved_cfg,
        "backend": backend,
        **data.notes,
        "n_train": len(data.train_x),
        "n_test": len(data.test_x),
        "epochs_done": history[-1]["epoch"] if history else 0,
        "test_elbo": test_elbo,
        "iwae": iwae,
        **({"label_accuracy": judged} if judged else {}),
        "active_units": latents["active_units"],
        "kl_per_dim": latents["kl_per_dim"],
        "mu_variance": latents["mu_variance"],
        "history": history,
        "train_seconds": sum(h["wall_seconds"] for h in history),
        "pictures": drawn,
        "pictures_skipped": skipped,
        "files": written,
        "checkpoint": str(out / "checkpoint.json"),
    }
    write_text(out / "summary.json", json.dumps(summary, indent=1) + "\n")
    iwae_text = (f", IWAE bound (k={iwae['k']}) {iwae['log_px_bound']:.2f}" if iwae else "") + " nats/image"
    print(f"active units {latents['active_units']}/{model.latent_dim} (posterior means varying with variance > "
          f"{ACTIVE_UNIT_THRESHOLD} across the test set); KL per dimension in summary.json")
    if judged:
        per_class = ", ".join(f"{c}: {100 * a:.1f}%" for c, a in enumerate(judged["per_class"]))
        print(f"label accuracy per class: {per_class}")
    judged_text = f"; label accuracy {100 * judged['overall']:.2f}% ({cfg['judge_samples']} samples per class)" \
        if judged else ""
    print(f"test ELBO{' of log p(x | y)' if classes else ''} {test_elbo:.2f}{iwae_text}"
          f" on {len(data.test_x)} test images{' (' + notes + ')' if notes else ''}"
          f"{'' if iwae else '; IWAE bound not computed (--iwae-k 0)'}; {backend} backend, "
          f"{plural(summary['epochs_done'], 'epoch')}, {minutes(summary['train_seconds'])} training; "
          f"{len(written)} files in {out}{judged_text}")  # fmt: skip
    return summary


def draw_pictures(out, pictures, picture_run, progress):
    """Draw and save each picture; returns (names written, {name: why skipped})."""
    if not pictures:
        return [], {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    drawn, skipped = [], {}
    progress.start("pictures", len(pictures), unit="picture")
    for i, (name, draw) in enumerate(pictures.items(), 1):
        try:
            fig = draw(plt, picture_run)
        except Skip as why:
            skipped[name] = str(why)
        else:
            save_figure(fig, out / name)
            plt.close(fig)
            drawn.append(name)
        progress.update(i, name)
    progress.finish()
    for name, why in skipped.items():
        print(f"{name} skipped: {why}")
    return drawn, skipped
