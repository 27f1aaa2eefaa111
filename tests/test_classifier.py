"""softmax_cross_entropy, the conv classifier preset, its training, saving and loading, examples/classifier.py."""

import json

import numpy as np
import pytest
from conftest import load_example
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import tinyvae
from tinyvae import Adam, conv_classifier, softmax_cross_entropy, train
from tinyvae.checkpoint import load_checkpoint, load_run, save_checkpoint
from tinyvae.datasets import write_idx
from tinyvae.evaluate import accuracy
from tinyvae.gradcheck import numerical_gradient, relative_error

TOL = 1e-6


@given(n=st.integers(1, 5), c=st.integers(2, 6), scale=st.sampled_from([1.0, 3.0]), seed=st.integers(0, 2**16))
def test_softmax_cross_entropy_gradient(backend, n, c, scale, seed):
    rng = np.random.default_rng(seed)
    logits, labels = scale * rng.standard_normal((n, c)), rng.integers(0, c, n)
    _, dlogits = softmax_cross_entropy(logits, labels)
    # Not where every answer is confidently right: the loss logsumexp(l) - l_y ~ 1e-5 is then a difference
    # of two numbers ~ 5 whose rounding swamps its finite differences (huge logits: the stability test below).
    assume(np.abs(dlogits).max() * n > 1e-2)

    def loss():
        return float(np.mean(softmax_cross_entropy(logits, labels)[0]))

    assert relative_error(dlogits, numerical_gradient(loss, logits)) < TOL


def test_softmax_cross_entropy_matches_the_naive_formula_and_is_softmax_minus_onehot():
    rng = np.random.default_rng(0)
    logits, labels = rng.standard_normal((4, 3)), np.array([0, 2, 1, 2])
    p = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    loss, dlogits = softmax_cross_entropy(logits, labels)
    np.testing.assert_allclose(loss, -np.log(p[np.arange(4), labels]), rtol=1e-12)
    np.testing.assert_allclose(dlogits, (p - np.eye(3)[labels]) / 4, rtol=1e-12)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_softmax_cross_entropy_is_stable_for_huge_logits(dtype):
    logits = np.array([[1000.0, -1000.0, 0.0], [-1e4, 1e4, 1e4]], dtype)
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        loss, dlogits = softmax_cross_entropy(logits, np.array([1, 2]))
    np.testing.assert_allclose(loss, [2000.0, np.log(2.0)], rtol=1e-6)
    np.testing.assert_allclose(dlogits, [[0.5, -0.5, 0.0], [0.0, 0.25, -0.25]], atol=1e-7)
    assert loss.dtype == dtype and dlogits.dtype == dtype


def test_softmax_cross_entropy_refuses_bad_labels_and_logits():
    with pytest.raises(ValueError, match=r"labels must lie in \[0, 3\), got values in \[0, 3\]"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0, 3]))
    with pytest.raises(ValueError, match=r"expected labels as an integer array of shape \(2,\), got float64 \(2,\)"):
        softmax_cross_entropy(np.zeros((2, 3)), np.array([0.0, 1.0]))
    with pytest.raises(ValueError, match=r"expected floating logits of shape \(N, num_classes\)"):
        softmax_cross_entropy(np.zeros((2, 3, 1)), np.array([0, 1]))


def tiny_classifier(rng, dtype=np.float64):
    return conv_classifier(3, input_shape=(1, 6, 6), channels=(2, 3), hidden=4, rng=rng, dtype=dtype)


def whole_model_gradient_error(model, x, y):
    """The relative error of loss_and_grads' gradients against central differences, all parameters at once."""
    model.loss_and_grads(x, y)
    analytic = {k: v.copy() for k, v in model.grads.items()}

    def loss():
        return model.loss_and_grads(x, y)["loss"]

    names = list(model.params)
    numeric = {name: numerical_gradient(loss, model.params[name]) for name in names}
    flat = [np.concatenate([d[name].ravel() for name in names]) for d in (analytic, numeric)]
    return relative_error(*flat)


@settings(max_examples=6)
@given(n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_classifier_gradients(backend, n, seed):
    rng = np.random.default_rng(seed)
    model = tiny_classifier(rng)
    for p in model.params.values():  # nonzero biases, so that every gradient is exercised
        p[...] = rng.standard_normal(p.shape) * 0.5
    # small logits: a saturated softmax would leave gradients (~1e-7) at the finite differences' noise level
    model.params["network.7.weight"] *= 0.1
    x, y = rng.standard_normal((n, 1, 6, 6)), rng.integers(0, 3, n)
    assert whole_model_gradient_error(model, x, y) < TOL


def bars(rng, n):
    """1x6x6 images of noise with a bright row in the top, middle or bottom third: the class."""
    y = rng.integers(0, 3, n)
    x = 0.3 * rng.random((n, 1, 6, 6))
    x[np.arange(n), 0, 2 * y + rng.integers(0, 2, n)] += 1.0
    return x.astype(np.float32), y


def test_a_short_training_raises_the_accuracy(backend):
    rng = np.random.default_rng(0)
    model = tiny_classifier(rng, np.float32)
    x, y = bars(rng, 300)
    before = accuracy(model, x, y)
    history = train(model, Adam(model.params, lr=0.02), x, labels=y, epochs=8, batch_size=32, rng=rng, beta=None)
    assert history[-1]["loss"] < history[0]["loss"]
    assert accuracy(model, x, y) > max(0.9, before + 0.3)
    assert model.predict(x).dtype == np.int64 and model.predict(x).shape == (300,)


def test_a_saved_classifier_loads_back_with_load_run(tmp_path):
    rng = np.random.default_rng(0)
    model = tiny_classifier(rng, np.float32)
    x, y = bars(rng, 40)
    optimizer = Adam(model.params)
    train(model, optimizer, x, labels=y, epochs=1, batch_size=16, rng=rng, beta=None)
    save_checkpoint(tmp_path, model, optimizer, epoch=1, rng=rng, config={"note": "test"})
    loaded = load_run(tmp_path)
    assert isinstance(loaded, tinyvae.Classifier) and not loaded.training
    assert loaded.architecture() == model.architecture()
    np.testing.assert_array_equal(loaded.logits(x), model.logits(x))
    assert load_checkpoint(tmp_path).meta["model"]["preset"] == "conv_classifier"


def test_classifier_refuses_bad_input():
    model = tiny_classifier(np.random.default_rng(0), np.float32)
    with pytest.raises(ValueError, match=r"Classifier: expected x of shape \(N, 1, 6, 6\), got shape"):
        model.predict(np.zeros((2, 36), np.float32))
    with pytest.raises(ValueError, match=r"softmax_cross_entropy: labels must lie in \[0, 3\)"):
        model.loss_and_grads(np.zeros((2, 1, 6, 6), np.float32), np.array([0, 5]))
    with pytest.raises(ValueError, match=r"conv_classifier: channels must be a pair"):
        conv_classifier(rng=np.random.default_rng(0), channels=(1, 2, 3))


@pytest.fixture(scope="module")
def example():
    return load_example("classifier")


def test_the_example_trains_saves_and_refuses_to_replace_a_run(example, tmp_path):
    rng = np.random.default_rng(0)
    for prefix, n in (("train", 64), ("t10k", 16)):
        write_idx(tmp_path / f"{prefix}-images-idx3-ubyte.gz", rng.integers(0, 256, (n, 28, 28), dtype=np.uint8))
        write_idx(tmp_path / f"{prefix}-labels-idx1-ubyte.gz", (np.arange(n) % 10).astype(np.uint8))
    out = tmp_path / "run"
    argv = ["--data-dir", str(tmp_path), "--epochs", "2", "--batch-size", "32", "--backend", "numpy", "--out", str(out)]
    summary = example.main(argv)
    assert [h["epoch"] for h in summary["history"]] == [1, 2] and 0 <= summary["test_accuracy"] <= 1
    assert json.loads((out / "summary.json").read_text()) == json.loads(json.dumps(summary))
    model = load_run(out)
    test_x = example.to_input(tinyvae.datasets.load_mnist(tmp_path).test_images)
    assert accuracy(model, test_x, np.arange(16) % 10) == summary["test_accuracy"]
    with pytest.raises(SystemExit, match=r"already holds a checkpoint; --overwrite replaces it"):
        example.main(argv)
    assert example.main([*argv, "--epochs", "0", "--overwrite"])["history"] == []


def test_the_example_documents_its_flags_and_refuses_bad_ones(example, tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for flag in ("--epochs", "--batch-size", "--lr", "--lr-decay", "--seed", "--backend", "--out", "--data-dir",
                 "--train-size", "--test-size", "--overwrite"):  # fmt: skip
        assert flag in text
    assert "load_run" in text
    with pytest.raises(SystemExit) as exit_info:
        example.main(["--lr-decay", "0", "--out", str(tmp_path / "run")])
    assert exit_info.value.code == 2 and "argument --lr-decay" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_the_example_defaults_depend_on_the_dataset_and_give_way_to_flags(example):
    mnist, faces = example.parse_args([]), example.parse_args(["--dataset", "faces"])
    assert (mnist["epochs"], mnist["lr_decay"]) == (4, 0.5)
    assert (faces["epochs"], faces["lr_decay"], faces["n_train"]) == (10, 0.8, 20000)
    given = example.parse_args(["--dataset", "faces", "--epochs", "2", "--lr-decay", "0.5"])
    assert (given["epochs"], given["lr_decay"]) == (2, 0.5)


# --------------------------------------------------------------------------------------
# The multi-label attribute classifier
# --------------------------------------------------------------------------------------

ATTRIBUTES = ["Eyeglasses", "Smiling", "Wearing_Hat"]


def tiny_attribute_classifier(rng, dtype=np.float64):
    return tinyvae.attribute_classifier(ATTRIBUTES, input_shape=(2, 6, 6), channels=(2, 3), hidden=4, rng=rng,
                                        dtype=dtype)  # fmt: skip


@settings(max_examples=6)
@given(n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_attribute_classifier_gradients(backend, n, seed):
    rng = np.random.default_rng(seed)
    model = tiny_attribute_classifier(rng)
    for p in model.params.values():  # nonzero biases, so that every gradient is exercised
        p[...] = rng.standard_normal(p.shape) * 0.5
    x, y = rng.standard_normal((n, 2, 6, 6)), rng.integers(0, 2, (n, 3))
    assert whole_model_gradient_error(model, x, y) < TOL


def test_attribute_loss_is_the_summed_sigmoid_cross_entropy_and_predictions_are_logits_above_zero():
    model = tiny_attribute_classifier(np.random.default_rng(0))
    x = np.random.default_rng(1).standard_normal((4, 2, 6, 6))
    y = np.array([[1, 0, 1], [0, 0, 0], [1, 1, 1], [0, 1, 0]])
    logits = model.logits(x)
    s = 1 / (1 + np.exp(-logits))
    expected = np.mean(np.sum(-(y * np.log(s) + (1 - y) * np.log(1 - s)), axis=1))
    terms = model.loss_and_grads(x, y.astype(bool))  # booleans work as 0/1
    np.testing.assert_allclose(terms["loss"], expected, rtol=1e-12)
    np.testing.assert_array_equal(model.predict(x), logits > 0)
    assert model.predict(x).dtype == bool and model.predict(x).shape == (4, 3)
    np.testing.assert_allclose(model.probabilities(x), s, rtol=1e-12)
    assert terms["accuracy"] == np.mean((logits > 0) == (y == 1))


def faces_like(rng, n):
    """2x6x6 noise; attribute a (of 3) is a bright pixel at a fixed place of channel a % 2, independently."""
    y = (rng.random((n, 3)) < 0.5).astype(np.uint8)
    x = 0.3 * rng.random((n, 2, 6, 6))
    for a, (c, i, j) in enumerate([(0, 1, 1), (1, 4, 4), (0, 4, 1)]):
        x[:, c, i, j] += y[:, a]
    return x.astype(np.float32), y


def test_a_short_training_learns_each_attribute_and_loads_back(backend, tmp_path):
    rng = np.random.default_rng(0)
    model = tiny_attribute_classifier(rng, np.float32)
    x, y = faces_like(rng, 400)
    optimizer = Adam(model.params, lr=0.03)
    history = train(model, optimizer, x, labels=y, epochs=10, batch_size=32, rng=rng, beta=None)
    assert history[-1]["loss"] < history[0]["loss"]
    accuracies = tinyvae.evaluate.attribute_accuracy(model.eval(), x, y)
    assert list(accuracies) == ATTRIBUTES and min(accuracies.values()) > 0.9, accuracies
    save_checkpoint(tmp_path, model, optimizer, epoch=10, rng=rng, config={})
    loaded = load_run(tmp_path)
    assert isinstance(loaded, tinyvae.AttributeClassifier) and loaded.attributes == tuple(ATTRIBUTES)
    np.testing.assert_array_equal(loaded.predict(x), model.predict(x))


def test_attribute_classifier_refuses_bad_attributes():
    model = tiny_attribute_classifier(np.random.default_rng(0))
    x = np.zeros((2, 2, 6, 6))
    with pytest.raises(ValueError, match=r"AttributeClassifier: expected attributes as an array of shape \(2, 3\)"):
        model.loss_and_grads(x, np.zeros(2, np.int64))
    with pytest.raises(ValueError, match=r"AttributeClassifier: attributes must be 0 or 1, got values \[0, 2\]"):
        model.loss_and_grads(x, np.array([[0, 2, 0], [0, 0, 0]]))
    with pytest.raises(ValueError, match=r"attribute_classifier: attributes must be a non-empty list"):
        tinyvae.attribute_classifier([], rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"AttributeClassifier: attributes must be a non-empty list of distinct"):
        tinyvae.attribute_classifier(["Smiling", "Smiling"], rng=np.random.default_rng(0))
