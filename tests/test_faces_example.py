"""The faces preset (shapes, config, whole-model gradients) and examples/faces.py run in-process at tiny sizes."""

import json

import numpy as np
import pytest
from conftest import load_example

import tinyvae
from tinyvae import BatchNorm1D, BatchNorm2D, ConvTranspose2D
from tinyvae.checkpoint import load_checkpoint
from tinyvae.gradcheck import numerical_gradient, relative_error
from tinyvae.optim import Adam
from tinyvae.presets import faces_vae

PICTURES = {"reconstructions.png", "samples.png", "latent.png", "latent_histograms.png", "attribute_arithmetic.png",
            "morphing.png", "curves.png"}  # fmt: skip
TOL = 1e-6  # float64 central differences with h = 1e-6


# --------------------------------------------------------------------------------------
# The preset
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size, hidden", [(64, 4), (32, 2), (30, 2)])
def test_the_encoder_halves_the_size_four_times_and_the_decoder_mirrors_it(size, hidden):
    model = faces_vae(latent_dim=5, input_shape=(3, size, size), channels=(4, 6, 6, 8), rng=np.random.default_rng(0))
    x = np.random.default_rng(1).random((2, 3, size, size), dtype=np.float32)
    assert model.encoder.forward(x).shape == (2, 10)
    assert model.encoder[-1].params["weight"].shape == (8 * hidden * hidden, 10)  # Dense from (N, 8, hidden, hidden)
    model.eval()
    decoded = model.decode(np.zeros((2, 5), np.float32))
    assert decoded.shape == (2, 3, size, size) and decoded.min() > 0 and decoded.max() < 1  # a Sigmoid's means
    transposed = [layer for layer in model.decoder if isinstance(layer, ConvTranspose2D)]
    assert [layer.stride for layer in transposed] == [(2, 2)] * 4
    assert transposed[-1].params["weight"].shape[1] == 3
    assert sum(isinstance(layer, BatchNorm2D) for layer in [*model.encoder, *model.decoder]) == 4 + 3
    assert sum(isinstance(layer, BatchNorm1D) for layer in model.decoder) == 1


def test_defaults_and_config_rebuild_the_same_architecture():
    model = faces_vae(rng=np.random.default_rng(0))
    assert model.config() == {"preset": "faces", "latent_dim": 200, "input_shape": [3, 64, 64],
                              "channels": [32, 64, 64, 64], "sigma": 0.1, "dtype": "float32"}  # fmt: skip
    assert model.likelihood.name == "gaussian" and model.sigma == 0.1
    small = faces_vae(latent_dim=7, input_shape=[3, 32, 32], channels=[4, 8], sigma=0.3, rng=np.random.default_rng(0))
    rebuilt = tinyvae.build_vae(**json.loads(json.dumps(small.config())), rng=np.random.default_rng(1))
    assert rebuilt.architecture() == small.architecture() and rebuilt.sigma == 0.3


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"channels": ()}, "channels must be a non-empty list"),
        ({"channels": (4, 0)}, "channels"),
        ({"sigma": 0.0}, "sigma must be a finite number > 0"),
        ({"sigma": float("nan")}, "sigma"),
        ({"input_shape": (3, 32)}, "input_shape must be"),
        ({"latent_dim": 0}, "latent_dim"),
    ],
)
def test_bad_preset_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=f"faces_vae: .*{message}"):
        faces_vae(rng=np.random.default_rng(0), **kwargs)


def test_whole_preset_gradients_in_training_mode(backend):
    """Every parameter of the preset (tiny: 2 stages, 8 x 8), float64, batch statistics."""
    rng = np.random.default_rng(3)
    model = faces_vae(latent_dim=2, input_shape=(3, 8, 8), channels=(2, 3), sigma=0.5, rng=rng, dtype=np.float64)
    for layer in [*model.encoder, *model.decoder]:  # away from gamma = 1, beta = 0, where terms could hide
        if isinstance(layer, (BatchNorm1D, BatchNorm2D)):
            layer.params["gamma"][...] = rng.uniform(0.5, 1.5, layer.num_features)
            layer.params["beta"][...] = rng.normal(0, 0.5, layer.num_features)
    x, eps = rng.random((3, 3, 8, 8)), rng.standard_normal((3, 2))
    assert model.training
    model.loss_and_grads(x, eps=eps)
    analytic = {k: v.copy() for k, v in model.grads.items()}

    def loss():
        return model.loss_and_grads(x, eps=eps)["loss"]

    assert analytic.keys() == model.params.keys()
    # a bias right before a BatchNorm is cancelled by its mean subtraction: no gradient
    before_batchnorm = {"encoder.0.bias", "encoder.3.bias", "decoder.0.bias", "decoder.4.bias"}
    for name, param in model.params.items():
        numeric = numerical_gradient(loss, param)
        if name in before_batchnorm:
            np.testing.assert_allclose(analytic[name], 0.0, atol=1e-12)
            np.testing.assert_allclose(numeric, 0.0, atol=1e-7)
        else:
            assert relative_error(analytic[name], numeric) < TOL, name


# --------------------------------------------------------------------------------------
# examples/faces.py
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def faces():
    return load_example("faces")


@pytest.fixture
def no_pictures(faces, monkeypatch):
    """Skip matplotlib in tests that are about training and checkpoints."""
    monkeypatch.setattr(faces, "PICTURES", {})


def tiny(out, *extra):
    """Flags for a run of a few seconds: 64 synthetic 32 x 32 faces, small channels, numpy backend, constant lr 1e-3."""
    return ["--size", "32", "--n-train", "64", "--test-size", "16", "--channels", "4,8,8,8", "--latent-dim", "8",
            "--batch-size", "32", "--lr", "1e-3", "--lr-decay", "1", "--backend", "numpy", "--iwae-k", "2",
            "--out", str(out), *extra]  # fmt: skip


def test_the_default_run_trains_the_network_measured_in_the_readme(faces):
    """README's Faces table measures `python examples/faces.py` as it is: three stride-2 layers down to an 8 x 8
    feature map (mouths and glasses come out sooner than through the book's 4 x 4), Adam at 3e-3 decayed by
    0.9 per epoch, batches of 32, 24 epochs, sigma 0.1. Fails when a default drifts from what was measured."""
    cfg = {f.key: faces.DEFAULTS.get(f.key, f.default) for f in faces.FLAGS}
    model = faces.build_model(cfg, np.random.default_rng(0))
    model.eval()
    features = model.encoder.layers[:-2]  # up to Flatten and the Dense to [mu | logvar]
    x = np.zeros((2, 3, 64, 64), np.float32)
    for layer in features:
        x = layer.forward(x)
    assert x.shape == (2, 64, 8, 8) and model.latent_dim == 200 and model.sigma == 0.1
    assert {k: faces.DEFAULTS[k] for k in ("epochs", "batch_size", "lr", "lr_decay")} == {
        "epochs": 24, "batch_size": 32, "lr": 3e-3, "lr_decay": 0.9}


def is_colour_png(path):
    from PIL import Image

    with Image.open(path) as image:
        assert image.format == "PNG"
        pixels = np.asarray(image.convert("RGB")).astype(int)  # matplotlib writes RGBA, Pillow's frames RGB
    return bool(np.any(pixels[..., 0] != pixels[..., 1]) or np.any(pixels[..., 1] != pixels[..., 2]))


def test_tiny_run_writes_colour_pictures_a_checkpoint_and_a_summary(faces, tmp_path):
    pytest.importorskip("matplotlib")
    out = tmp_path / "run"
    summary = faces.main(tiny(out, "--epochs", "1", "--attribute", "Eyeglasses"))

    written = {p.name for p in out.iterdir()}
    assert PICTURES | {"samples-epoch000.png", "samples-epoch001.png", "samples.gif", "summary.json"} <= written
    assert summary["pictures"] == list(faces.PICTURES) and summary["pictures_skipped"] == {}
    for name in PICTURES | {"samples-epoch001.png"}:
        assert is_colour_png(out / name), name
    saved = json.loads((out / "summary.json").read_text())
    assert saved["n_train"] == 64 and saved["n_test"] == 16 and saved["backend"] == "numpy"
    assert saved["data"].startswith("synthetic faces") and saved["data"].endswith("32x32")
    assert saved["config"]["channels"] == [4, 8, 8, 8] and saved["config"]["attribute"] == "Eyeglasses"
    assert np.isfinite(saved["test_elbo"]) and np.isfinite(saved["iwae"]["log_px_bound"])
    ckpt = load_checkpoint(out)
    assert ckpt.epoch == 1 and ckpt.meta["model"]["preset"] == "faces"


def final_state(out):
    ckpt = load_checkpoint(out)
    return ckpt, {**ckpt.model_state, **{f"opt/{k}": v for k, v in ckpt.optimizer_state.items()}}


def test_resumed_run_matches_an_uninterrupted_one_running_statistics_included(faces, tmp_path, no_pictures):
    straight = faces.main(tiny(tmp_path / "straight", "--epochs", "2"))
    faces.main(tiny(tmp_path / "resumed", "--epochs", "1"))
    resumed = faces.main(["--resume", "--epochs", "2", "--out", str(tmp_path / "resumed")])

    (a, arrays_a), (b, arrays_b) = final_state(tmp_path / "straight"), final_state(tmp_path / "resumed")
    assert a.epoch == b.epoch == 2 and arrays_a.keys() == arrays_b.keys()
    assert any(k.endswith("running_var") for k in arrays_a)
    for k in arrays_a:
        np.testing.assert_array_equal(arrays_a[k], arrays_b[k], err_msg=k)
    assert [h["test_elbo"] for h in straight["history"]] == [h["test_elbo"] for h in resumed["history"]]
    assert straight["iwae"]["log_px_bound"] == resumed["iwae"]["log_px_bound"]


def test_the_checkpoint_holds_what_training_alone_gives(faces, tmp_path, no_pictures):
    """Evaluation (test ELBO, sample frames) runs in eval mode: it leaves BatchNorm's running statistics alone.

    Fails if the runner evaluates in training mode: each evaluation would normalize with its own batch's
    statistics and fold them into the running ones that the checkpoint saves.
    """
    out = tmp_path / "run"
    faces.main(tiny(out, "--epochs", "2"))
    cfg = {"size": 32, "n_train": 64, "test_size": 16, "channels": [4, 8, 8, 8], "latent_dim": 8, "sigma": 0.1,
           "data_dir": None, "attribute": "Smiling"}  # fmt: skip
    data = faces.load_data(cfg)
    init_rng, train_rng, _, _ = (np.random.default_rng(s) for s in np.random.SeedSequence(0).spawn(4))
    model = faces.build_model(cfg, init_rng)
    with tinyvae.use_backend("numpy"):
        tinyvae.train(model, Adam(model.params, lr=1e-3), data.train_x, epochs=2, batch_size=32, rng=train_rng,
                      transform=data.transform)  # fmt: skip
    saved = load_checkpoint(out).model_state
    for name, value in {**model.params, **model.buffers}.items():
        np.testing.assert_array_equal(saved[name], value, err_msg=name)


def test_celeba_data_dir_trains_on_its_train_split(faces, tmp_path, monkeypatch, no_pictures):
    pytest.importorskip("PIL")
    from test_celeba import make_celeba

    monkeypatch.setenv("TINYVAE_CACHE", str(tmp_path / "cache"))
    make_celeba(tmp_path / "data", "torchvision")  # 20 train, 5 valid, 5 test images
    argv = tiny(tmp_path / "run", "--epochs", "1", "--data-dir", str(tmp_path / "data"), "--attribute", "Bald")
    summary = faces.main([a for a in argv if a not in ("--test-size", "16")])
    assert summary["n_train"] == 20 and summary["n_test"] == 5 and summary["data"].startswith("CelebA from")


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--attribute", "Bald"], "--attribute Bald: unknown; synthetic faces have Blond_Hair, Eyeglasses"),
        (["--channels", "4,x"], "--channels: expected channel counts >= 1"),
        (["--channels", "4,0"], "--channels: expected channel counts >= 1"),
        (["--size", "48"], "--size: invalid choice"),
        (["--sigma", "0"], "--sigma: expected a finite number > 0"),
    ],
)
def test_bad_flags_are_one_clear_message_before_any_checkpoint(faces, tmp_path, capsys, argv, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit) as exit_info:
        faces.main(tiny(out, "--epochs", "1", *argv))
    assert exit_info.value.code != 0
    assert message in f"{exit_info.value.code} {capsys.readouterr().err}"
    assert not (out / "checkpoint.json").exists()


def test_help_names_the_faces_flags_and_pictures(faces, capsys):
    with pytest.raises(SystemExit) as exit_info:
        faces.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for word in ("--size", "--n-train", "--data-dir", "--attribute", "--channels", "--sigma", "--resume",
                 *PICTURES):  # fmt: skip
        assert word in text, word


# --------------------------------------------------------------------------------------
# --attribute-judge: the judged attribute arithmetic
# --------------------------------------------------------------------------------------


def tiny_judge(directory, size=32, attributes=tinyvae.datasets.FACE_ATTRIBUTES):
    """An untrained attribute classifier of 3 x size x size faces, saved as examples/classifier.py saves one."""
    rng = np.random.default_rng(0)
    judge = tinyvae.attribute_classifier(list(attributes), input_shape=(3, size, size), channels=(2, 2), hidden=4,
                                         rng=rng)  # fmt: skip
    tinyvae.checkpoint.save_checkpoint(directory, judge, Adam(judge.params), epoch=0, rng=rng, config={})
    return directory


def test_attribute_judge_rates_the_arithmetic_into_the_summary(faces, tmp_path, no_pictures, capsys):
    out = tmp_path / "run"
    summary = faces.main(tiny(out, "--epochs", "1", "--test-size", "40", "--attribute", "Male",
                              "--attribute-judge", str(tiny_judge(tmp_path / "judge"))))  # fmt: skip
    edits = summary["attribute_edits"]
    assert json.loads((out / "summary.json").read_text())["attribute_edits"] == edits
    assert list(edits["attributes"]) == ["Eyeglasses", "Smiling", "Male"] and edits["factors"] == [1.0, 2.0, 3.0]
    _, test_attributes, names = tinyvae.datasets.synthetic_faces(40, 32, np.random.default_rng(faces.TEST_SEED))
    for name, rates in edits["attributes"].items():
        with_it = int(test_attributes[:, names.index(name)].sum())
        assert [r["n"] for r in rates["add"]] == [40 - with_it] * 3
        assert [r["n"] for r in rates["remove"]] == [with_it] * 3
        assert [r["factor"] for r in rates["remove"]] == [-1.0, -2.0, -3.0]
        for r in rates["add"] + rates["remove"]:
            assert 0 <= r["both"] <= min(r["switched"], r["others_kept"]) <= 1
    assert set(edits["judge_accuracy"]) == {"test faces", "reconstructions"}
    printed = capsys.readouterr().out
    assert "judged attribute arithmetic" in printed and "Smiling add (" in printed and "Eyeglasses remove (" in printed


@pytest.mark.parametrize(
    "judge, message",
    [
        (lambda d: d / "nothing", r"--attribute-judge .*nothing: .*examples/classifier.py --dataset faces"),
        (lambda d: tiny_judge(d / "j", size=64), r"it takes \(3, 64, 64\) float32 images, but the model makes"),
        (lambda d: tiny_judge(d / "j", attributes=["Eyeglasses", "Smiling"]), r"does not know Blond_Hair"),
    ],
)
def test_a_judge_that_cannot_judge_stops_the_run_before_training(faces, tmp_path, no_pictures, judge, message):
    out = tmp_path / "run"
    with pytest.raises(SystemExit, match=message):
        faces.main(tiny(out, "--epochs", "1", "--attribute-judge", str(judge(tmp_path))))
    assert not (out / "checkpoint.json").exists()
