"""KL warm-up (a beta schedule in the train loop) and the latent diagnostics (KL per dimension, active units)."""

import numpy as np
import pytest

from tinyvae import Adam, kl_normal_standard, mlp_vae, train
from tinyvae.evaluate import latent_statistics
from tinyvae.train import linear_warmup


def test_linear_warmup_rises_step_by_step_from_zero_to_beta():
    schedule = linear_warmup(0.8, 2)
    n_steps = 4
    betas = [schedule(epoch, step, n_steps) for epoch in (1, 2, 3) for step in range(1, n_steps + 1)]
    expected = [0.8 * min(1.0, t / 8) for t in range(12)]  # 8 steps of warm-up
    np.testing.assert_allclose(betas, expected, rtol=1e-12)
    assert betas[0] == 0.0 and betas[8:] == [0.8] * 4
    assert linear_warmup(0.5, 0)(1, 1, 10) == 0.5  # no warm-up
    assert linear_warmup(1.0, 0.5)(1, 3, 4) == pytest.approx(1.0)  # half an epoch: full beta at mid-epoch


@pytest.mark.parametrize("beta, warmup", [(-1.0, 1), (float("nan"), 1), (1.0, -2), (1.0, float("inf"))])
def test_linear_warmup_refuses_bad_arguments(beta, warmup):
    with pytest.raises(ValueError, match=r"linear_warmup: (beta|warmup_epochs) must be a finite number >= 0"):
        linear_warmup(beta, warmup)


def tiny(rng):
    return mlp_vae(3, hidden=8, input_shape=(1, 2, 3), rng=rng, dtype=np.float64)


def images(rng, n):
    return (rng.random((n, 1, 2, 3)) < 0.5).astype(np.float64)


def test_train_gives_each_step_the_schedules_beta(monkeypatch):
    rng = np.random.default_rng(0)
    model = tiny(rng)
    seen, loss_and_grads = [], type(model).loss_and_grads

    def recording(self, x, **kwargs):
        seen.append(kwargs["beta"])
        return loss_and_grads(self, x, **kwargs)

    monkeypatch.setattr(type(model), "loss_and_grads", recording)
    schedule = linear_warmup(1.0, 1)
    train(model, Adam(model.params), images(rng, 10), epochs=2, batch_size=4, rng=rng, beta=schedule)
    assert seen == [schedule(e, s, 3) for e in (1, 2) for s in (1, 2, 3)]
    assert seen[:3] == [0.0, 1 / 3, 2 / 3] and seen[3:] == [1.0] * 3


def test_a_resumed_schedule_continues_where_it_stopped():
    """Two epochs at once, or epoch 1 then epoch 2 from start_epoch=1: the same parameters."""
    schedule, x = linear_warmup(1.0, 1.5), images(np.random.default_rng(1), 12)
    results = []
    for split in (False, True):
        rng = np.random.default_rng(0)
        model = tiny(rng)
        optimizer = Adam(model.params)
        for start, end in ([(0, 1), (1, 2)] if split else [(0, 2)]):
            train(model, optimizer, x, epochs=end, start_epoch=start, batch_size=5, rng=rng, beta=schedule)
        results.append(model.state_dict())
    for name in results[0]:
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)


def test_train_passes_the_objective_and_the_labels(monkeypatch):
    rng = np.random.default_rng(0)
    model = tiny(rng)
    seen, loss_and_grads = [], type(model).loss_and_grads

    def recording(self, x, y=None, **kwargs):
        seen.append((y.copy(), kwargs["objective"], kwargs["k"]))
        return loss_and_grads(self, x, **kwargs)

    monkeypatch.setattr(type(model), "loss_and_grads", recording)
    labels = np.arange(7)
    history = train(model, Adam(model.params), images(rng, 7), epochs=1, batch_size=3, rng=rng, labels=labels,
                    loss_kwargs={"objective": "iwae", "k": 3})  # fmt: skip
    assert sorted(np.concatenate([y for y, _, _ in seen]).tolist()) == list(range(7))
    assert {(o, k) for _, o, k in seen} == {("iwae", 3)}
    assert {"loss", "iwae_bound", "reconstruction", "kl"} <= set(history[0])
    with pytest.raises(ValueError, match=r"train: labels must be an array of shape \(7,\)"):
        train(model, Adam(model.params), images(rng, 7), epochs=1, batch_size=3, rng=rng, labels=np.arange(6))


def test_kl_per_dimension_adds_up_to_the_kl_and_finds_the_collapsed_units():
    rng = np.random.default_rng(0)
    model = tiny(rng)
    weight, bias = model.params["encoder.3.weight"], model.params["encoder.3.bias"]  # h = [mu | logvar], L = 3
    weight[:, 1] = 0.0  # mu_1 is the same for every x: an inactive unit
    bias[1], bias[4] = 0.0, 0.0  # ... and, with logvar_1 = 0 as well, q(z_1 | x) = N(0, 1): zero KL
    weight[:, 4] = 0.0
    weight[:, 0] *= 30.0  # mu_0 moves a lot with x
    x = images(rng, 40)
    stats = latent_statistics(model, x, batch_size=16)  # three batches, the last one partial
    mu, logvar = model.encode(x)
    kl, _, _ = kl_normal_standard(mu, logvar)
    assert sum(stats["kl_per_dim"]) == pytest.approx(float(kl.mean()), rel=1e-12)
    assert stats["kl_per_dim"][1] == pytest.approx(0.0, abs=1e-15)
    np.testing.assert_allclose(stats["mu_variance"], mu.var(axis=0), rtol=1e-12)
    assert stats["active"][0] and not stats["active"][1]
    assert stats["active_units"] == sum(stats["active"]) == int(np.sum(mu.var(axis=0) > 0.01))
