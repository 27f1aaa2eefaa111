"""tinyvae.runner with a model and data that are not MNIST's; tinyvae.progress; tinyvae.pictures."""

import io
import json
import sys

import numpy as np
import pytest
from PIL import Image

import tinyvae
from tinyvae import pictures, progress
from tinyvae.runner import Data, Flag, run


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_piped_progress_prints_a_line_each_interval_and_nothing_in_between():
    stream, clock = io.StringIO(), FakeClock()
    bar = progress.Progress(stream, clock=clock)
    for step in range(1, 101):
        clock.now = step * 1.0  # one second per step, from step 1: a line at steps 11, 21, ..., 91
        bar.on_batch(2, step, 100, {"loss": 99.5}, epochs=5)
    lines = stream.getvalue().splitlines()
    assert [line.split()[3] for line in lines] == [f"{step}/100" for step in range(11, 100, 10)]
    assert lines[0] == "epoch 2/5: step 11/100 (11%) loss 99.50  ETA 81s"
    assert "\r" not in stream.getvalue() and bar.label is None  # the epoch's task ended with its last step


def test_terminal_progress_redraws_one_line_and_erases_it():
    stream, clock = Terminal(), FakeClock()
    bar = progress.Progress(stream, clock=clock)
    bar.start("IWAE bound (k=5)", 4, unit="batch")
    for i in range(1, 5):
        clock.now = i
        bar.update(i)
    bar.finish()
    text = stream.getvalue()
    assert "\n" not in text and text.count("\r") == 5 and text.endswith("\r\033[K")
    assert "IWAE bound (k=5) [" in text and "batch 4/4 (100%)" in text


def test_tile_keeps_colour_channels_and_gray_becomes_two_dimensional():
    rgb = np.random.default_rng(0).random((5, 3, 4, 6))  # (N, C, H, W)
    mosaic = pictures.tile(rgb, 3)  # 2 rows of 3 images, one blank
    assert mosaic.shape == (8, 18, 3)
    np.testing.assert_array_equal(mosaic[4:8, 6:12], rgb[4].transpose(1, 2, 0))
    np.testing.assert_array_equal(mosaic[4:8, 12:18], 0)
    assert pictures.tile(rgb[:, :1], 3).shape == (8, 18)
    assert pictures.to_pixels(np.ones((1, 1, 2, 2)), 1, "gray_r").max() == 0  # ink: 1 is black


def tiny_rgb_vae(rng, latent_dim=2):
    """An MLP VAE for 3 x 8 x 8 colour images."""
    d, kw = 3 * 8 * 8, dict(rng=rng, dtype=np.float32)
    encoder = tinyvae.Sequential(tinyvae.Flatten(), tinyvae.Dense(d, 16, **kw), tinyvae.Tanh(),
                                 tinyvae.Dense(16, 2 * latent_dim, **kw))  # fmt: skip
    decoder = tinyvae.Sequential(tinyvae.Dense(latent_dim, 16, **kw), tinyvae.Tanh(), tinyvae.Dense(16, d, **kw),
                                 tinyvae.Reshape(3, 8, 8))  # fmt: skip
    return tinyvae.VAE(encoder, decoder, latent_dim, (3, 8, 8))


def test_the_runner_trains_and_draws_any_model_on_colour_images(tmp_path, capsys):
    rng = np.random.default_rng(0)
    images = rng.random((40, 3, 8, 8)).astype(np.float32)  # (N, C, H, W) in [0, 1]

    def load_data(cfg):
        return Data(images[:32], images[32:], notes={"colour": "random RGB"})

    flags = [Flag("--latent-dim", 2, "size of z", int, low=1)]
    out = tmp_path / "run"
    summary = run(["--out", str(out), "--epochs", "2", "--batch-size", "16", "--backend", "numpy", "--iwae-k", "2"],
                  description="A tiny colour VAE.", flags=flags, load_data=load_data,
                  build_model=lambda cfg, rng: tiny_rgb_vae(rng, cfg["latent_dim"]), pictures=pictures.PICTURES)  # fmt: skip
    assert summary["colour"] == "random RGB" and summary["n_train"] == 32 and summary["n_test"] == 8
    assert set(summary["pictures"]) == set(pictures.PICTURES) and summary["pictures_skipped"] == {}
    assert set(summary["files"]) <= {p.name for p in out.iterdir()}
    with Image.open(out / "samples-epoch002.png") as frame:
        assert frame.mode == "RGB" and frame.size == (2 * 8 * 8, 2 * 8 * 8)
    assert json.loads((out / "summary.json").read_text())["epochs_done"] == 2
    assert "2 epochs," in capsys.readouterr().out.splitlines()[-1]


def test_pictures_skip_what_a_model_cannot_show():
    model = tiny_rgb_vae(np.random.default_rng(0), latent_dim=3)
    one = pictures.PictureRun(model, np.zeros((1, 3, 8, 8), np.float32), np.random.default_rng(0))
    for draw, reason in ((pictures.manifold, "needs latent dim 2, the model has 3"),
                         (pictures.interpolation, "needs at least 2 test images, got 1"),
                         (pictures.latent, "needs at least 3 test images to scatter, got 1"),
                         (pictures.curves, "no training steps yet"),
                         (pictures.classes, "for conditional models only"),
                         (pictures.analogies, "for conditional models only")):  # fmt: skip
        with pytest.raises(pictures.Skip, match=reason):
            draw(None, one)


def test_data_of_another_dtype_than_the_model_is_refused_before_training(tmp_path):
    images = np.random.default_rng(0).random((40, 3, 8, 8))  # float64: the model is float32

    with pytest.raises(SystemExit, match=r"data: the test images are \(8, 3, 8, 8\) float64, but the model takes "
                                         r"\(N, 3, 8, 8\) float32"):  # fmt: skip
        run(["--out", str(tmp_path / "run"), "--backend", "numpy"], description="A tiny colour VAE.", flags=[],
            load_data=lambda cfg: Data(images[:32], images[32:]), build_model=lambda cfg, rng: tiny_rgb_vae(rng),
            pictures={})  # fmt: skip
    assert not (tmp_path / "run" / "checkpoint.json").exists()


def test_without_matplotlib_the_run_goes_on_and_says_which_pictures_it_skipped(tmp_path, monkeypatch, capsys):
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if not installed: `import matplotlib` fails
    images = np.random.default_rng(0).random((40, 3, 8, 8)).astype(np.float32)
    out = tmp_path / "run"
    summary = run(["--out", str(out), "--epochs", "1", "--batch-size", "16", "--backend", "numpy"],
                  description="A tiny colour VAE.", flags=[], load_data=lambda cfg: Data(images[:32], images[32:]),
                  build_model=lambda cfg, rng: tiny_rgb_vae(rng), pictures=pictures.PICTURES)  # fmt: skip
    assert "no pictures: matplotlib is not installed" in capsys.readouterr().out
    assert set(summary["pictures_skipped"]) == {*pictures.PICTURES, "samples-epochNNN.png", "samples.gif"}
    assert sorted(p.name for p in out.iterdir() if p.suffix in (".png", ".gif")) == []
    assert (out / "summary.json").is_file() and (out / "metrics.jsonl").is_file()


def test_the_runner_gives_a_conditional_model_its_labels_and_draws_every_picture_in_colour(tmp_path):
    rng = np.random.default_rng(0)
    images, labels = rng.random((40, 3, 8, 8)).astype(np.float32), np.arange(40) % 3  # (N, C, H, W), (N,)
    drawn = {**pictures.PICTURES, **pictures.CONDITIONAL_PICTURES}
    out = tmp_path / "run"
    summary = run(["--out", str(out), "--epochs", "1", "--batch-size", "16", "--backend", "numpy", "--iwae-k", "2"],
                  description="A tiny colour CVAE.", flags=[],
                  load_data=lambda cfg: Data(images[:32], images[32:], labels[32:], train_labels=labels[:32]),
                  build_model=lambda cfg, rng: tinyvae.mlp_vae(2, hidden=8, input_shape=(3, 8, 8), rng=rng,
                                                               num_classes=3),
                  pictures=drawn)  # fmt: skip
    assert set(summary["pictures"]) == set(drawn) and summary["pictures_skipped"] == {}
    with Image.open(out / "samples-epoch001.png") as frame:  # one row per class, 8 columns
        assert frame.mode == "RGB" and frame.size == (2 * 8 * 8, 2 * 8 * 3)


@pytest.mark.parametrize("train_labels, message", [
    (None, r"data: the model is conditional \(num_classes=3\), but load_data gave no training labels"),
    (np.arange(32) % 4, r"data: the training labels: labels must lie in \[0, 3\), got values in \[0, 3\]"),
])  # fmt: skip
def test_a_conditional_model_without_fitting_labels_is_refused_before_training(tmp_path, train_labels, message):
    images = np.random.default_rng(0).random((40, 3, 8, 8)).astype(np.float32)
    with pytest.raises(SystemExit, match=message):
        run(["--out", str(tmp_path / "run"), "--backend", "numpy"], description="A tiny colour CVAE.", flags=[],
            load_data=lambda cfg: Data(images[:32], images[32:], np.zeros(8, int), train_labels=train_labels),
            build_model=lambda cfg, rng: tinyvae.mlp_vae(2, hidden=8, input_shape=(3, 8, 8), rng=rng, num_classes=3),
            pictures={})  # fmt: skip
    assert not (tmp_path / "run" / "checkpoint.json").exists()
