"""examples/mnist.py --conditional and --judge on tiny IDX files; tinyvae.evaluate.label_accuracy."""

import json

import numpy as np
import pytest
from PIL import Image

import tinyvae
from tinyvae.checkpoint import load_checkpoint, save_checkpoint
from tinyvae.evaluate import label_accuracy


def save_judge(directory, input_shape=(1, 28, 28), num_classes=10):
    """A tiny untrained conv classifier, saved as examples/classifier.py saves one."""
    rng = np.random.default_rng(0)
    judge = tinyvae.conv_classifier(num_classes, input_shape=input_shape, channels=(2, 2), hidden=4, rng=rng)
    save_checkpoint(directory, judge, tinyvae.Adam(judge.params), epoch=1, rng=rng, config={})
    return directory


def small(data_dir, out, *extra):
    """Flags for a quick conditional mlp run on the tiny IDX files."""
    return ["--data-dir", str(data_dir), "--arch", "mlp", "--hidden", "16", "--latent-dim", "2", "--batch-size", "32",
            "--backend", "numpy", "--iwae-k", "2", "--conditional", "--out", str(out), *extra]  # fmt: skip


def test_a_conditional_run_draws_classes_and_analogies_and_reports_the_label_accuracy(mnist, data_dir, tmp_path,
                                                                                        capsys):  # fmt: skip
    out = tmp_path / "run"
    judge = save_judge(tmp_path / "judge")
    summary = mnist.main(small(data_dir, out, "--epochs", "1", "--judge", str(judge), "--judge-samples", "30"))

    assert set(mnist.PICTURES) == set(summary["pictures"]) and summary["pictures_skipped"] == {}
    assert {"classes.png", "analogies.png"} <= {p.name for p in out.iterdir()}
    with Image.open(out / "samples-epoch001.png") as frame:  # one row per class, 8 columns, 2 x 2 per pixel
        assert frame.size == (2 * 28 * 8, 2 * 28 * 10)
    assert summary["config"]["conditional"] is True
    assert load_checkpoint(out).meta["model"]["num_classes"] == 10
    judged = json.loads((out / "summary.json").read_text())["label_accuracy"]
    assert judged["n_per_class"] == 30 and len(judged["per_class"]) == 10 and judged["judge"] == str(judge)
    assert 0 <= judged["overall"] <= 1 and judged["overall"] == pytest.approx(np.mean(judged["per_class"]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1].startswith("test ELBO of log p(x | y)")
    assert f"label accuracy {100 * judged['overall']:.2f}% (30 samples per class)" in lines[-1]


def test_an_unconditional_run_skips_the_conditional_pictures(mnist, data_dir, tmp_path):
    argv = [a for a in small(data_dir, tmp_path / "run", "--epochs", "0") if a != "--conditional"]
    summary = mnist.main(argv)
    assert set(summary["pictures_skipped"]) == {"classes.png", "analogies.png", "curves.png"}  # 0 epochs: no curves
    assert "label_accuracy" not in summary and summary["config"]["conditional"] is False


@pytest.fixture
def no_pictures(mnist, monkeypatch):
    monkeypatch.setattr(mnist, "PICTURES", {})


def test_a_resumed_conditional_run_matches_an_uninterrupted_one(mnist, data_dir, tmp_path, no_pictures):
    mnist.main(small(data_dir, tmp_path / "straight", "--epochs", "2"))
    mnist.main(small(data_dir, tmp_path / "resumed", "--epochs", "1"))
    mnist.main(["--out", str(tmp_path / "resumed"), "--data-dir", str(data_dir), "--epochs", "2", "--resume"])
    straight, resumed = load_checkpoint(tmp_path / "straight"), load_checkpoint(tmp_path / "resumed")
    assert straight.meta["history"][-1]["test_elbo"] == resumed.meta["history"][-1]["test_elbo"]
    for name, value in straight.model_state.items():
        np.testing.assert_array_equal(resumed.model_state[name], value, err_msg=name)


def test_resume_refuses_to_make_a_run_conditional(mnist, data_dir, tmp_path, no_pictures):
    out = tmp_path / "run"
    mnist.main([a for a in small(data_dir, out, "--epochs", "1") if a != "--conditional"])
    with pytest.raises(SystemExit, match=r"--resume: .* other settings: --conditional True \(checkpoint: False\)"):
        mnist.main(small(data_dir, out, "--epochs", "2", "--resume"))
    assert load_checkpoint(out).epoch == 1


def test_a_judge_that_cannot_judge_is_an_error_before_training(mnist, data_dir, tmp_path, no_pictures):
    vae_run = tmp_path / "vae"
    mnist.main(small(data_dir, vae_run, "--epochs", "0"))
    cases = [
        ([], tmp_path / "nothing", r"--judge .*nothing: .*no checkpoint here.*examples/classifier.py"),
        ([], save_judge(tmp_path / "small", input_shape=(1, 6, 6)),
         r"the judge takes 10 classes of \(1, 6, 6\) float32 images, but the model makes 10 classes of \(1, 28, 28\)"),
        ([], vae_run, r"the judge must be a Classifier, got a VAE"),
        (["--conditional"], save_judge(tmp_path / "good"), r"the model is not conditional"),
    ]  # fmt: skip
    for i, (drop, judge, message) in enumerate(cases):
        out = tmp_path / f"run{i}"
        argv = [a for a in small(data_dir, out, "--epochs", "1", "--judge", str(judge)) if a not in drop]
        with pytest.raises(SystemExit, match=message):
            mnist.main(argv)
        assert not (out / "checkpoint.json").exists()


class ConstantJudge(tinyvae.Classifier):
    """Calls every image class 0, and keeps what it was shown."""

    def predict(self, x):
        self.shown.append(x)
        return np.zeros(len(x), np.int64)


def test_label_accuracy_classifies_the_decoder_means_of_each_class():
    rng = np.random.default_rng(0)
    model = tinyvae.mlp_vae(2, hidden=4, input_shape=(1, 3, 3), rng=rng, num_classes=3)
    network = tinyvae.Sequential(tinyvae.Flatten(), tinyvae.Dense(9, 3, rng=rng, dtype=np.float32))
    judge = ConstantJudge(network, 3, (1, 3, 3))
    judge.shown = []
    result = label_accuracy(model, judge, 4, np.random.default_rng(5), batch_size=5)
    assert result == {"overall": pytest.approx(1 / 3), "per_class": [1.0, 0.0, 0.0], "n_per_class": 4}
    expected = model.sample(12, np.random.default_rng(5), y=np.repeat([0, 1, 2], 4))  # means, not binarized
    np.testing.assert_array_equal(np.concatenate(judge.shown), expected)
    assert [len(x) for x in judge.shown] == [5, 5, 2]
