"""The faces CSVAE (tinyvae.csvae.conv_csvae), its conditional-VAE baseline (faces_cvae), attribute transfer and
how a judge rates it; examples/csvae.py --data faces end to end."""

import json

import numpy as np
import pytest
from conftest import load_example
from hypothesis import given, settings
from hypothesis import strategies as st

from tinyvae import build_vae
from tinyvae.checkpoint import load_checkpoint, load_run, save_checkpoint
from tinyvae.csvae import CSVAE, attribute_classes, judged_transfer, transfer_w
from tinyvae.gradcheck import numerical_gradient, relative_error
from tinyvae.model import VAE, _modules
from tinyvae.norm import BatchNorm1D, BatchNorm2D
from tinyvae.presets import attribute_classifier

TOL = 1e-6
TINY = dict(input_shape=(3, 8, 8), channels=(2, 3), sigma=0.5, dtype=np.float64)


def away_from_identity(model, rng):
    """BatchNorm's gamma and beta off 1 and 0, where terms of their gradients could hide, and every bias off its
    initial 0: a ReLU whose inputs are all dead sees exactly its bias, and at 0 it sits on its kink, where finite
    differences disagree with the one-sided derivative (Hypothesis found it: n=3, seed=3, sample)."""
    for name, param in model.params.items():
        if name.endswith("gamma"):
            param[...] = rng.uniform(0.5, 1.5, param.shape)
        elif name.endswith("beta") or name.endswith("bias"):
            param[...] = rng.normal(0, 0.5, param.shape)
    assert any(isinstance(m, (BatchNorm1D, BatchNorm2D)) for m in _modules(model))
    return model


def check_against_numeric(analytic, params, loss):
    names = list(params)
    numeric = {name: numerical_gradient(loss, params[name]) for name in names}
    flat = [np.concatenate([d[name].ravel() for name in names]) for d in (analytic, numeric)]
    assert relative_error(*flat) < TOL


@settings(max_examples=4, deadline=None)
@given(n=st.integers(2, 3), seed=st.integers(0, 2**16), adversary_input=st.sampled_from(["sample", "mean"]))
def test_conv_csvae_gradients_in_training_mode(backend, n, seed, adversary_input):
    """Both objectives of the conv CSVAE, every parameter, float64, BatchNorm on batch statistics."""
    rng = np.random.default_rng(seed)
    model = build_vae("conv_csvae", rng=rng, z_dim=2, w_dim=2, num_attributes=2, adversary_hidden=3,
                      betas=tuple(rng.uniform(0.2, 2.0, 5)), w_on_mean=1.5, adversary_input=adversary_input, **TINY)
    away_from_identity(model, rng)
    x, y = rng.random((n, 3, 8, 8)), rng.integers(0, 2, (n, 2))
    eps_z, eps_w = rng.standard_normal((n, 2)), rng.standard_normal((n, 4))
    assert model.training

    def loss():
        return model.loss_and_grads(x, y, eps_z=eps_z, eps_w=eps_w)["loss"]

    loss()
    check_against_numeric(model.vae_grads(), model.vae_params(), loss)

    def adversary_loss():
        return model.adversary_loss_and_grads(x, y, eps_z=eps_z)["loss"]

    adversary_loss()
    check_against_numeric(model.adversary_grads(), model.adversary_params(), adversary_loss)


@settings(max_examples=4, deadline=None)
@given(n=st.integers(2, 3), seed=st.integers(0, 2**16), m=st.integers(1, 2))
def test_faces_cvae_gradients_in_training_mode(backend, n, seed, m):
    rng = np.random.default_rng(seed)
    model = away_from_identity(build_vae("faces_cvae", rng=rng, latent_dim=2, num_attributes=m, **TINY), rng)
    assert isinstance(model, VAE) and model.num_classes == 2**m
    x, labels, eps = rng.random((n, 3, 8, 8)), rng.integers(0, 2**m, n), rng.standard_normal((n, 2))

    def loss():
        return model.loss_and_grads(x, eps=eps, y=labels)["loss"]

    loss()
    check_against_numeric(model.grads, model.params, loss)


def test_the_label_reaches_both_networks_of_the_conditional_baseline():
    rng = np.random.default_rng(0)
    model = build_vae("faces_cvae", rng=rng, latent_dim=2, num_attributes=2, **TINY).eval()
    x = rng.random((2, 3, 8, 8))
    mu = {c: model.encode(x, np.array([c, c]))[0] for c in range(4)}
    decoded = {c: model.decode(mu[0], np.array([c, c])) for c in range(4)}
    for c in range(1, 4):
        assert not np.allclose(mu[c], mu[0]) and not np.allclose(decoded[c], decoded[0])


def test_attribute_classes_and_their_flips():
    y = np.array([[0, 0], [1, 0], [0, 1], [1, 1]])
    np.testing.assert_array_equal(attribute_classes(y), [0, 1, 2, 3])
    np.testing.assert_array_equal(attribute_classes(y) ^ 1, attribute_classes(y ^ [1, 0]))  # flips attribute 0
    with pytest.raises(ValueError, match=r"attribute_classes: expected attributes \(N, m\) of 0/1"):
        attribute_classes(np.array([0, 1]))


def test_transfer_replaces_only_its_own_w():
    rng = np.random.default_rng(1)
    model = build_vae("conv_csvae", rng=rng, z_dim=2, w_dim=2, num_attributes=2, **TINY).eval()
    x, y = rng.random((5, 3, 8, 8)), rng.integers(0, 2, (5, 2))
    mu_z, mu_w = model.encode_z(x)[0], model.encode_w(x, y)[0]
    reconstructions, same = transfer_w(model, x, y, 1, mu_w[:, 2:4], batch_size=2)  # its own w: no change
    np.testing.assert_allclose(same, reconstructions, atol=1e-12)
    np.testing.assert_allclose(reconstructions, model.reconstruct(x, y), atol=1e-12)
    w_new = rng.standard_normal((5, 2)) * 3
    _, moved = transfer_w(model, x, y, 1, w_new)
    expected = np.concatenate([mu_w[:, :2], w_new], axis=1)
    np.testing.assert_allclose(moved, model.mean(model.decode(mu_z, expected)), atol=1e-12)
    with pytest.raises(ValueError, match=r"transfer_w: w_new must be \(5, 2\), one w per image"):
        transfer_w(model, x, y, 0, w_new[:3])
    with pytest.raises(ValueError, match=r"transfer_w: attribute must be < num_attributes = 2, got 2"):
        transfer_w(model, x, y, 2, w_new)


class BrightnessJudge:
    """A stand-in judge: "Bright" when the mean pixel is over 0.5, "Red" when the red channel's mean is over 0.5."""

    attributes = ["Bright", "Red"]

    def predict(self, images):
        return np.stack([images.mean(axis=(1, 2, 3)) > 0.5, images[:, 0].mean(axis=(1, 2)) > 0.5], axis=1)


def test_judged_transfer_counts_switches_and_kept_others():
    dark, bright = np.full((1, 3, 2, 2), 0.2), np.full((1, 3, 2, 2), 0.8)
    red_dark = dark.copy()
    red_dark[:, 0] = 0.7
    reconstructions = np.concatenate([dark, dark, dark, red_dark])
    transfers = np.concatenate([bright, dark, red_dark, bright])  # switched, not, not, switched
    rates = judged_transfer(BrightnessJudge(), reconstructions, transfers, "Bright", on=True, batch_size=3)
    # Red on reconstruction / transfer: no/yes (changed), no/no, no/yes (changed), yes/yes
    assert rates == {"switched": 0.5, "others_kept": 0.5, "both": 0.25, "n": 4}
    off = judged_transfer(BrightnessJudge(), transfers, reconstructions, "Bright", on=False)
    assert off["switched"] == 1.0  # the reconstructions, seen as transfers, are all without "Bright"
    with pytest.raises(ValueError, match=r"judged_transfer: the judge does not know 'Smiling'"):
        judged_transfer(BrightnessJudge(), reconstructions, transfers, "Smiling", on=True)


# --------------------------------------------------------------------------------------
# examples/csvae.py --data faces
# --------------------------------------------------------------------------------------

FACES = ["--data", "faces", "--n-train", "64", "--n-test", "48", "--channels", "4,4", "--z-dim", "3",
         "--adversary-hidden", "8", "--backend", "numpy"]  # fmt: skip


@pytest.fixture(scope="module")
def example():
    return load_example("csvae")


@pytest.fixture(scope="module")
def judge_dir(tmp_path_factory):
    """An (untrained) attribute classifier of 32 x 32 synthetic faces, saved as a run: enough to be a judge."""
    from tinyvae.datasets import FACE_ATTRIBUTES

    out = tmp_path_factory.mktemp("judge")
    rng = np.random.default_rng(0)
    judge = attribute_classifier(list(FACE_ATTRIBUTES), input_shape=(3, 32, 32), channels=(2, 2), hidden=4, rng=rng)
    save_checkpoint(out, judge, {}, epoch=0, rng=rng, config={})
    return out


@pytest.mark.parametrize("model", ["csvae", "cvae", "vae"])
def test_a_tiny_faces_run_of_each_model_is_judged(example, tmp_path, judge_dir, model):
    summary = example.main([*FACES, "--model", model, "--epochs", "1", "--judge", str(judge_dir),
                            "--out", str(tmp_path)])  # fmt: skip
    methods = {"csvae": ["csvae"], "cvae": ["cvae"], "vae": ["vae x1", "vae x2"]}[model]
    rows = summary["transfers"]
    assert {(r["method"], r["attribute"], r["way"]) for r in rows} == {
        (m, a, w) for m in methods for a in ("Eyeglasses", "Smiling") for w in ("add", "remove")}
    y_test = example.load_data({**summary["config"], "attributes": ["Eyeglasses", "Smiling"]})[3]
    for r in rows:
        column = ["Eyeglasses", "Smiling"].index(r["attribute"])
        assert r["n"] == int((y_test[:, column] == (r["way"] == "remove")).sum())
        assert 0 <= r["both"] <= min(r["switched"], r["others_kept"]) <= 1
    assert 0 < summary["reconstruction_rmse"] < 1
    loaded = load_run(tmp_path)
    assert isinstance(loaded, CSVAE) == (model == "csvae") and loaded.input_shape == (3, 32, 32)
    assert loaded.latent_dim == 3 + 2 * 2  # the baselines get the CSVAE's whole latent size
    pictures = {"csvae": {"curves.png", "styles.png", "transfer.png", "latent.png"}}.get(model, {"curves.png"})
    assert set(summary["pictures"]) == pictures and all((tmp_path / p).exists() for p in pictures)
    assert json.loads((tmp_path / "summary.json").read_text())["transfers"] == rows


def test_a_faces_run_resumes_exactly(example, tmp_path):
    example.main([*FACES, "--epochs", "2", "--out", str(tmp_path / "straight")])
    example.main([*FACES, "--epochs", "1", "--out", str(tmp_path / "resumed")])
    example.main([*FACES, "--epochs", "2", "--out", str(tmp_path / "resumed"), "--resume"])
    a, b = load_run(tmp_path / "straight"), load_run(tmp_path / "resumed")
    for k, v in a.state_dict().items():  # parameters and BatchNorm's running statistics
        np.testing.assert_array_equal(b.state_dict()[k], v, err_msg=k)
    optimizers = load_checkpoint(tmp_path / "resumed").meta["optimizers"]  # faces' defaults: 3e-3, decayed 0.93
    assert [o["lr"] for o in optimizers.values()] == pytest.approx([3e-3 * 0.93] * 2)


def test_faces_refusals_name_the_problem(example, tmp_path, judge_dir):
    with pytest.raises(SystemExit, match=r"--attributes: Beard unknown; these faces have Blond_Hair, Eyeglasses"):
        example.main([*FACES, "--attributes", "Eyeglasses,Beard", "--out", str(tmp_path / "a")])
    with pytest.raises(SystemExit, match=r"--model cvae: the baselines are for --data faces"):
        example.main(["--model", "cvae", "--out", str(tmp_path / "b")])
    with pytest.raises(SystemExit, match=r"--judge .*: the judge rates attribute transfers of --data faces"):
        example.main(["--judge", str(judge_dir), "--out", str(tmp_path / "c")])
    with pytest.raises(SystemExit, match=r"--judge .*: attribute judge: it takes \(3, 32, 32\) float32 images, but "
                                         r"the model makes \(3, 64, 64\)"):  # fmt: skip
        example.main([*FACES, "--size", "64", "--judge", str(judge_dir), "--out", str(tmp_path / "d")])
    for name in "abcd":
        assert not (tmp_path / name / "checkpoint.json").exists()


def test_the_table_rates_runs_side_by_side_and_refuses_other_data(example, tmp_path, judge_dir, capsys):
    table = load_example("csvae_table")
    for model in ("csvae", "cvae"):
        example.main([*FACES, "--model", model, "--epochs", "1", "--out", str(tmp_path / model)])
    result = table.main(["--judge", str(judge_dir), str(tmp_path / "csvae"), str(tmp_path / "cvae"),
                         "--out", str(tmp_path / "table")])  # fmt: skip
    assert {(r["method"], r["attribute"]) for r in result["rows"]} == {
        (m, a) for m in ("csvae", "cvae") for a in ("Eyeglasses", "Smiling")}
    assert len(result["table"].splitlines()) == 2 + 4  # a header, its rule, a line per model and attribute
    assert (tmp_path / "table" / "table.md").read_text() == result["table"]
    assert result["table"] in capsys.readouterr().out
    example.main([*FACES, "--n-test", "40", "--epochs", "1", "--out", str(tmp_path / "other")])
    with pytest.raises(SystemExit, match=r"trained on other data than .*: n_test 40 \(in .*: 48\)"):
        table.main(["--judge", str(judge_dir), str(tmp_path / "csvae"), str(tmp_path / "other")])
