"""The VAE model, its presets, the optimizers and the training loop."""

import numpy as np
import pytest

import tinyvae
from tinyvae import SGD, VAE, Adam, NonFiniteLossError, build_vae, conv_vae, mlp_vae, train
from tinyvae.objectives import elbo, iwae_bound


def binary_batch(rng, n, shape=(1, 28, 28)):
    return (rng.random((n, *shape)) < 0.3).astype(np.float32)


@pytest.mark.parametrize("preset, latent", [("conv", 2), ("conv", 32), ("mlp", 20)])
def test_presets_map_images_to_logits_of_the_same_shape(backend, preset, latent):
    rng = np.random.default_rng(0)
    model = build_vae(preset, rng=rng, latent_dim=latent)
    x = binary_batch(rng, 3)
    mu, logvar = model.encode(x)
    assert mu.shape == logvar.shape == (3, latent)
    assert model.decode(mu).shape == x.shape
    samples = model.sample(4, rng)
    assert samples.shape == (4, 1, 28, 28) and samples.dtype == np.float32
    assert np.all((samples >= 0) & (samples <= 1))
    assert model.reconstruct(x).shape == x.shape


def test_conv_preset_matches_the_tensorflow_tutorial_parameter_count():
    model = conv_vae(2, rng=np.random.default_rng(0))
    # TF CVAE tutorial, latent 2: encoder 320 + 18,496 + 9,220; decoder 4,704 + 18,496 + 18,464 + 289
    assert sum(p.size for p in model.params.values()) == 320 + 18_496 + 9_220 + 4_704 + 18_496 + 18_464 + 289


def test_mlp_preset_is_784_hidden_latent():
    model = mlp_vae(20, hidden=400, rng=np.random.default_rng(0))
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes["encoder.1.weight"] == (784, 400) and shapes["encoder.3.weight"] == (400, 40)
    assert shapes["decoder.0.weight"] == (20, 400) and shapes["decoder.2.weight"] == (400, 784)


def test_mlp_depth_stacks_hidden_layers_like_burda_et_al():
    model = mlp_vae(50, hidden=200, depth=2, rng=np.random.default_rng(0))
    shapes = {k: v.shape for k, v in model.params.items()}
    assert shapes == {"encoder.1.weight": (784, 200), "encoder.1.bias": (200,), "encoder.3.weight": (200, 200),
                      "encoder.3.bias": (200,), "encoder.5.weight": (200, 100), "encoder.5.bias": (100,),
                      "decoder.0.weight": (50, 200), "decoder.0.bias": (200,), "decoder.2.weight": (200, 200),
                      "decoder.2.bias": (200,), "decoder.4.weight": (200, 784), "decoder.4.bias": (784,)}
    rebuilt = build_vae(**model.config(), rng=np.random.default_rng(1))
    assert {k: v.shape for k, v in rebuilt.params.items()} == shapes
    with pytest.raises(ValueError, match="mlp_vae.*depth"):
        mlp_vae(2, depth=0, rng=np.random.default_rng(0))


def test_unknown_preset_and_wrong_input_are_clear_errors():
    with pytest.raises(ValueError, match="unknown preset 'resnet'"):
        build_vae("resnet", rng=np.random.default_rng(0))
    model = mlp_vae(2, hidden=8, rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"VAE: expected x of shape \(N, 1, 28, 28\), got shape \(2, 784\)"):
        model.loss_and_grads(np.zeros((2, 784), np.float32), rng=np.random.default_rng(0))
    with pytest.raises(ValueError, match=r"VAE: expected x of dtype float32 \(the parameters.\), got float64; convert with x.astype\(np.float32\)"):
        model.loss_and_grads(np.zeros((2, 1, 28, 28)), rng=np.random.default_rng(0))


def test_loss_terms_add_up_and_beta_weights_the_kl():
    rng = np.random.default_rng(0)
    model = mlp_vae(4, hidden=16, rng=rng)
    x = binary_batch(rng, 8)
    eps = rng.standard_normal((8, 4)).astype(np.float32)
    terms = model.loss_and_grads(x, eps=eps, beta=1.0)
    assert terms["loss"] == pytest.approx(terms["reconstruction"] + terms["kl"])
    half = model.loss_and_grads(x, eps=eps, beta=0.5)
    assert half["loss"] == pytest.approx(half["reconstruction"] + 0.5 * half["kl"])
    assert half["reconstruction"] == terms["reconstruction"]


def test_iwae_bound_is_exact_when_the_posterior_is_the_prior():
    """If q(z|x) = p(z) and p(x|z) ignores z, every importance weight equals p(x)."""
    rng = np.random.default_rng(0)
    model = mlp_vae(3, hidden=8, rng=rng, dtype=np.float64)
    model.params["encoder.3.weight"][...] = 0  # mu = logvar = 0: q is the prior
    model.params["decoder.0.weight"][...] = 0  # the decoder's output no longer depends on z
    x = (rng.random((5, 1, 28, 28)) < 0.3).astype(np.float64)
    log_px = -model.likelihood.nll(model.decode(np.zeros((5, 3))), x)[0]
    np.testing.assert_allclose(iwae_bound(model, x, k=7, rng=rng), log_px, rtol=1e-12)
    np.testing.assert_allclose(elbo(model, x, rng), log_px, rtol=1e-12)


def test_iwae_bound_is_at_least_the_elbo_on_average():
    rng = np.random.default_rng(1)
    model = mlp_vae(2, hidden=16, rng=rng, dtype=np.float64)
    x = (rng.random((20, 1, 28, 28)) < 0.3).astype(np.float64)
    one_sample = np.mean([elbo(model, x, rng).mean() for _ in range(20)])
    assert iwae_bound(model, x, k=64, rng=rng).mean() > one_sample


def test_adam_matches_a_hand_computed_first_step():
    param = np.array([1.0, -2.0])
    opt = Adam({"p": param}, lr=0.1)
    opt.step({"p": np.array([0.5, -4.0])})
    # after one step m_hat = g and v_hat = g^2, so the update is lr * sign(g) (up to eps)
    np.testing.assert_allclose(param, [0.9, -1.9], rtol=1e-7)
    assert opt.step_count == 1


def test_sgd_momentum_accumulates_velocity():
    param = np.array([0.0])
    opt = SGD({"p": param}, lr=0.1, momentum=0.5)
    opt.step({"p": np.array([1.0])})  # v = 1, p = -0.1
    opt.step({"p": np.array([1.0])})  # v = 1.5, p = -0.25
    np.testing.assert_allclose(param, [-0.25])


def test_optimizer_rejects_mismatched_grads():
    opt = Adam({"p": np.zeros(2)})
    with pytest.raises(ValueError, match=r"Adam.step: grad p has shape \(3,\)"):
        opt.step({"p": np.zeros(3)})


def small_training_run(seed, epochs=2):
    rng = np.random.default_rng(seed)
    model = mlp_vae(2, hidden=16, rng=rng)
    optimizer = Adam(model.params, lr=1e-3)
    images = binary_batch(np.random.default_rng(123), 64)
    history = train(model, optimizer, images, epochs=epochs, batch_size=16, rng=rng)
    return model, optimizer, history


def test_training_is_reproducible_from_one_seed():
    a, _, history_a = small_training_run(5)
    b, _, history_b = small_training_run(5)
    c, _, _ = small_training_run(6)
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    assert [h["loss"] for h in history_a] == [h["loss"] for h in history_b]
    assert not np.array_equal(a.params["encoder.1.weight"], c.params["encoder.1.weight"])


def test_training_stops_on_nan_without_updating():
    rng = np.random.default_rng(0)
    model = mlp_vae(2, hidden=8, rng=rng)
    model.params["decoder.2.bias"][0] = np.nan
    before = model.state_dict()
    with pytest.raises(NonFiniteLossError, match=r"the loss term 'reconstruction' is nan at epoch 1, step 1"):
        train(model, Adam(model.params), binary_batch(rng, 8), epochs=1, batch_size=4, rng=rng)
    for k, v in before.items():
        np.testing.assert_array_equal(model.params[k], v)  # NaN compares equal here: same array


@pytest.mark.filterwarnings("ignore:invalid value encountered")
def test_training_stops_on_inf_input():
    rng = np.random.default_rng(0)
    model = mlp_vae(2, hidden=8, rng=rng, likelihood="gaussian")  # Bernoulli refuses x outside [0, 1] earlier
    images = binary_batch(rng, 8)
    images[3, 0, 0, 0] = np.inf
    with pytest.raises(NonFiniteLossError, match="loss term"):
        train(model, Adam(model.params), images, epochs=1, batch_size=8, rng=rng)


def test_train_calls_hooks_and_reports_epoch_means():
    rng = np.random.default_rng(0)
    model = mlp_vae(2, hidden=8, rng=rng)
    seen = []
    history = train(
        model, Adam(model.params), binary_batch(rng, 10), epochs=2, batch_size=4, rng=rng,
        on_batch=lambda epoch, step, n_steps, terms: seen.append((epoch, step, n_steps)),
        on_epoch=lambda epoch, stats: seen.append(("epoch", epoch)),
    )  # fmt: skip
    assert seen == [(1, 1, 3), (1, 2, 3), (1, 3, 3), ("epoch", 1), (2, 1, 3), (2, 2, 3), (2, 3, 3), ("epoch", 2)]
    assert [h["epoch"] for h in history] == [1, 2]
    assert history[0]["loss"] == pytest.approx(history[0]["reconstruction"] + history[0]["kl"])


def test_state_dict_round_trip_and_mismatch():
    rng = np.random.default_rng(0)
    a, b = mlp_vae(2, hidden=8, rng=rng), mlp_vae(2, hidden=8, rng=rng)
    b.load_state_dict(a.state_dict())
    for k in a.params:
        np.testing.assert_array_equal(a.params[k], b.params[k])
    with pytest.raises(ValueError, match=r"decoder.0.weight expected \(2, 8\) float32, got \(3, 8\)"):
        b.load_state_dict({**a.state_dict(), "decoder.0.weight": np.zeros((3, 8), np.float32)})
    with pytest.raises(ValueError, match="missing keys"):
        VAE.load_state_dict(b, {})


# -- presets: input shape, config, rebuilding ---------------------------------------------


@pytest.mark.parametrize("preset", ["conv", "mlp"])
@pytest.mark.parametrize("input_shape", [(3, 32, 32), (2, 8, 12)])
def test_presets_take_any_input_shape(backend, preset, input_shape):
    rng = np.random.default_rng(0)
    model = build_vae(preset, rng=rng, latent_dim=3, input_shape=input_shape)
    x = binary_batch(rng, 2, input_shape)
    assert model.input_shape == input_shape
    assert model.reconstruct(x).shape == x.shape and model.sample(2, rng).shape == x.shape
    assert np.isfinite(model.loss_and_grads(x, rng=rng)["loss"])


def test_conv_preset_refuses_sizes_it_cannot_decode_back():
    with pytest.raises(ValueError, match=r"conv_vae: height and width must be multiples of 4"):
        conv_vae(2, input_shape=(1, 30, 28), rng=np.random.default_rng(0))


@pytest.mark.parametrize("preset", ["conv", "mlp"])
def test_config_rebuilds_the_same_architecture(preset):
    model = build_vae(preset, rng=np.random.default_rng(0), latent_dim=3, input_shape=(3, 16, 20), dtype=np.float64)
    config = model.config()
    assert config["preset"] == preset
    rebuilt = build_vae(**config, rng=np.random.default_rng(1))
    assert rebuilt.architecture() == model.architecture() and rebuilt.dtype == np.float64


def test_presets_default_latent_dims():
    rng = np.random.default_rng(0)
    assert conv_vae(rng=rng).latent_dim == 2 and mlp_vae(rng=rng).latent_dim == 20


# -- the model is a module: named parameters, modes, state ----------------------------------


def test_model_is_a_module_with_encoder_and_decoder_children():
    model = mlp_vae(2, hidden=8, rng=np.random.default_rng(0))
    assert isinstance(model, tinyvae.Module)
    assert list(model.params) == [f"{part}.{i}.{k}" for part, ids in (("encoder", (1, 3)), ("decoder", (0, 2)))
                                  for i in ids for k in ("weight", "bias")]  # fmt: skip
    assert model.params["encoder.1.weight"] is model.encoder[1].params["weight"]  # shared, not copied
    assert model.training and model.encoder[1].training
    model.eval()
    assert not model.training and not model.decoder[2].training
    model.train()
    assert model.decoder[2].training


def test_state_dict_holds_buffers_and_the_optimizer_never_sees_them():
    class Scaled(tinyvae.Dense):  # a layer with saved, never-optimized state
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self._buffers = {"count": np.zeros(1)}

    rng = np.random.default_rng(0)
    model = VAE(tinyvae.Sequential(Scaled(4, 2, rng=rng)), tinyvae.Sequential(tinyvae.Dense(1, 4, rng=rng)), 1, (4,))
    assert list(model.buffers) == ["encoder.0.count"] and "encoder.0.count" not in model.params
    state = model.state_dict()
    assert set(state) == {*model.params, "encoder.0.count"}
    state["encoder.0.count"][...] = 7
    model.load_state_dict(state)
    assert model.buffers["encoder.0.count"][0] == 7
    with pytest.raises(ValueError, match=r"missing keys \['encoder.0.count'\]"):
        model.load_state_dict(dict(model.params))


def test_the_package_reaches_its_submodules():
    assert callable(tinyvae.datasets.load_mnist) and callable(tinyvae.gradcheck.numerical_gradient)
    assert callable(tinyvae.checkpoint.save_checkpoint) and callable(tinyvae.evaluate.mean_elbo)
    assert callable(tinyvae.objectives.negative_elbo) and callable(tinyvae.distributions.DiagonalGaussian)


# -- bad arguments: a ValueError naming the function and the argument ------------------------


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 2.5}, r"train: batch_size must be an int >= 1, got 2.5"),
        ({"batch_size": 0}, r"train: batch_size must be an int >= 1, got 0"),
        ({"epochs": 1.5}, r"train: epochs must be an int >= 0, got 1.5"),
        ({"rng": 0}, r"train: rng must be a numpy.random.Generator"),
    ],
)
def test_train_refuses_bad_arguments(kwargs, message):
    rng = np.random.default_rng(0)
    model = mlp_vae(2, hidden=8, rng=rng)
    arguments = {"epochs": 1, "batch_size": 4, "rng": rng, **kwargs}
    with pytest.raises(ValueError, match=message):
        train(model, Adam(model.params), binary_batch(rng, 8), **arguments)


def test_empty_batches_are_refused_on_every_backend(backend):
    rng = np.random.default_rng(0)
    model = conv_vae(2, rng=rng)
    empty = np.zeros((0, 1, 28, 28), np.float32)
    with pytest.raises(ValueError, match=r"train: images: expected a batch of at least one example"):
        train(model, Adam(model.params), empty, epochs=1, batch_size=4, rng=rng)
    with pytest.raises(ValueError, match=r"VAE: expected a batch of at least one example"):
        model.loss_and_grads(empty, rng=rng)


def test_bernoulli_model_refuses_unscaled_pixels():
    rng = np.random.default_rng(0)
    model = mlp_vae(2, hidden=8, rng=rng)
    pixels = np.full((4, 1, 28, 28), 255.0, np.float32)
    with pytest.raises(ValueError, match=r"targets x must lie in \[0, 1\].*divide 8-bit pixels by 255.*gaussian"):
        train(model, Adam(model.params), pixels, epochs=1, batch_size=4, rng=rng)


@pytest.mark.parametrize("latent, finite", [(2, True), (5, False)])
@pytest.mark.filterwarnings("ignore:invalid value encountered", "ignore:overflow encountered")
def test_the_non_finite_stop_fires_alike_on_every_backend(backend, latent, finite):
    """logvar = 88: exp(88) = 1.7e38 fits float32, the KL of 2 such latents (1.7e38) too, of 5 (4.1e38) not.

    The KL's sum must overflow at the same place on every backend (it once did in float32 on
    NumPy and in float64 on Numba), so the NaN/Inf stop fires alike.
    """
    rng = np.random.default_rng(0)
    model = mlp_vae(latent, hidden=8, rng=rng)
    model.params["encoder.3.weight"][...] = 0
    model.params["encoder.3.bias"][...] = [0] * latent + [88] * latent  # mu = 0, logvar = 88
    images = binary_batch(rng, 4)
    expected_kl = 0.5 * latent * (np.exp(88.0) - 1 - 88)
    if finite:
        history = train(model, SGD(model.params, lr=1e-30), images, epochs=1, batch_size=4, rng=rng)
        assert history[0]["kl"] == pytest.approx(expected_kl, rel=1e-5)
    else:
        with pytest.raises(NonFiniteLossError, match="the loss term 'kl' is inf"):
            train(model, SGD(model.params, lr=1e-30), images, epochs=1, batch_size=4, rng=rng)


def test_train_can_show_its_progress_in_a_log(monkeypatch, capsys):
    """progress=True: with stdout piped (as here), a line every PIPED_EVERY_S seconds (here: every step)."""
    import tinyvae.progress as progress_module

    monkeypatch.setattr(progress_module, "PIPED_EVERY_S", 0.0)
    rng = np.random.default_rng(0)
    model = tinyvae.mlp_vae(latent_dim=2, hidden=8, rng=rng)
    images = (rng.random((64, 1, 28, 28)) < 0.3).astype(np.float32)
    tinyvae.train(model, tinyvae.Adam(model.params), images, epochs=2, batch_size=8, rng=rng, progress=True)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 16 and lines[0].startswith("epoch 1/2: step 1/8 (12%) loss ")
    assert lines[-1].startswith("epoch 2/2: step 8/8 (100%) loss ")
