"""Hand-written gradients against central differences (float64), on every backend.

Each check uses the scalar L = sum(out * G) for a random G, so dL/dout = G is fed to
backward and every input and parameter gradient is compared with its numeric estimate.
"""

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from tinyvae import VAE, Bernoulli, Concat, Conv2D, ConvTranspose2D, Dense, DiagonalGaussian, Flatten, Gaussian
from tinyvae import LeakyReLU, ReLU, Reparameterize, Reshape, Sequential, Sigmoid, Split, Tanh
from tinyvae import bernoulli_nll, gaussian_nll, kl_normal_standard
from tinyvae.gradcheck import layer_gradient_errors, numerical_gradient, relative_error

TOL = 1e-6  # float64 central differences with h = 1e-6 are good to ~1e-8 here


def check_layer(layer, x, rng):
    """Backward's dx and every parameter gradient agree with finite differences."""
    errors = layer_gradient_errors(layer, x, rng)
    assert max(errors.values()) < TOL, errors


conv_geometry = st.fixed_dictionaries(
    {
        "n": st.integers(1, 3),
        "c_in": st.integers(1, 3),
        "c_out": st.integers(1, 3),
        "h": st.integers(1, 7),
        "w": st.integers(1, 7),
        "k": st.integers(1, 3),
        "stride": st.integers(1, 3),
        "padding": st.integers(0, 2),
        "seed": st.integers(0, 2**16),
    }
)


@given(g=conv_geometry)
def test_conv2d_gradients(backend, g):
    assume(g["h"] + 2 * g["padding"] >= g["k"] and g["w"] + 2 * g["padding"] >= g["k"])
    rng = np.random.default_rng(g["seed"])
    layer = Conv2D(g["c_in"], g["c_out"], g["k"], rng=rng, stride=g["stride"], padding=g["padding"], dtype=np.float64)
    layer.params["bias"][...] = rng.standard_normal(g["c_out"])
    check_layer(layer, rng.standard_normal((g["n"], g["c_in"], g["h"], g["w"])), rng)


@given(g=conv_geometry, output_padding=st.integers(0, 2))
def test_conv_transpose2d_gradients(backend, g, output_padding):
    output_padding = min(output_padding, g["stride"] - 1)
    layer = ConvTranspose2D(
        g["c_in"], g["c_out"], g["k"], rng=np.random.default_rng(g["seed"]), stride=g["stride"],
        padding=g["padding"], output_padding=output_padding, dtype=np.float64,
    )  # fmt: skip
    assume(min(layer.output_shape((1, g["c_in"], g["h"], g["w"]))[2:]) >= 1)
    rng = np.random.default_rng(g["seed"] + 1)
    layer.params["bias"][...] = rng.standard_normal(g["c_out"])
    check_layer(layer, rng.standard_normal((g["n"], g["c_in"], g["h"], g["w"])), rng)


@given(n=st.integers(1, 4), d_in=st.integers(1, 6), d_out=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_dense_gradients(backend, n, d_in, d_out, seed):
    rng = np.random.default_rng(seed)
    layer = Dense(d_in, d_out, rng=rng, dtype=np.float64)
    layer.params["bias"][...] = rng.standard_normal(d_out)
    check_layer(layer, rng.standard_normal((n, d_in)), rng)


@pytest.mark.parametrize(
    "layer, shape",
    [(ReLU(), (12,)), (LeakyReLU(0.1), (3, 4)), (Sigmoid(), (12,)), (Tanh(), (2, 2, 3)), (Flatten(), (3, 4)),
     (Reshape(3, 2, 2), (12,))],
    ids=repr,
)  # fmt: skip
@given(n=st.integers(1, 3), seed=st.integers(0, 2**16))
def test_parameter_free_layer_gradients(backend, layer, shape, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, *shape))
    x[np.abs(x) < 1e-3] = 0.5  # keep ReLU's kink away from the finite-difference step
    check_layer(layer, x, rng)


@given(n=st.integers(1, 4), latent=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_reparameterize_gradients(backend, n, latent, seed):
    rng = np.random.default_rng(seed)
    mu, logvar = rng.standard_normal((n, latent)), rng.standard_normal((n, latent))
    eps, G = rng.standard_normal((n, latent)), rng.standard_normal((n, latent))
    layer = Reparameterize()
    layer.forward(mu, logvar, eps=eps)
    dmu, dlogvar = layer.backward(G)

    def loss():
        return float(np.sum(layer.forward(mu, logvar, eps=eps) * G))

    assert relative_error(dmu, numerical_gradient(loss, mu)) < TOL
    assert relative_error(dlogvar, numerical_gradient(loss, logvar)) < TOL


@given(n=st.integers(1, 4), latent=st.integers(1, 5), seed=st.integers(0, 2**16))
def test_kl_gradients(backend, n, latent, seed):
    rng = np.random.default_rng(seed)
    mu, logvar = rng.standard_normal((n, latent)), rng.standard_normal((n, latent))
    _, dmu, dlogvar = kl_normal_standard(mu, logvar)

    def loss():
        return float(np.mean(kl_normal_standard(mu, logvar)[0]))

    assert relative_error(dmu, numerical_gradient(loss, mu)) < TOL
    assert relative_error(dlogvar, numerical_gradient(loss, logvar)) < TOL


@given(n=st.integers(1, 4), d=st.integers(1, 8), scale=st.sampled_from([1.0, 10.0]), seed=st.integers(0, 2**16))
def test_bernoulli_gradients(backend, n, d, scale, seed):
    rng = np.random.default_rng(seed)
    logits = scale * rng.standard_normal((n, 1, d))
    x = rng.random((n, 1, d))  # soft targets check the formula away from {0, 1} too
    _, dlogits = bernoulli_nll(logits, x)

    def loss():
        return float(np.mean(bernoulli_nll(logits, x)[0]))

    assert relative_error(dlogits, numerical_gradient(loss, logits)) < TOL


@given(n=st.integers(1, 4), d=st.integers(1, 8), sigma=st.sampled_from([0.1, 1.0, 3.0]), seed=st.integers(0, 2**16))
def test_gaussian_gradients(n, d, sigma, seed):
    rng = np.random.default_rng(seed)
    mean, x = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    _, dmean = gaussian_nll(mean, x, sigma)

    def loss():
        return float(np.mean(gaussian_nll(mean, x, sigma)[0]))

    assert relative_error(dmean, numerical_gradient(loss, mean)) < TOL


@pytest.mark.parametrize("likelihood", [Bernoulli(), Gaussian(0.7)], ids=repr)
@given(n=st.integers(1, 4), d=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_likelihood_gradients(backend, likelihood, n, d, seed):
    """nll(params, x) returns the gradient of the batch-mean nll w.r.t. the decoder's output."""
    rng = np.random.default_rng(seed)
    params, x = 3.0 * rng.standard_normal((n, 2, d)), rng.random((n, 2, d))
    _, dparams = likelihood.nll(params, x)

    def loss():
        return float(np.mean(likelihood.nll(params, x)[0]))

    assert relative_error(dparams, numerical_gradient(loss, params)) < TOL


sizes = st.lists(st.integers(1, 4), min_size=1, max_size=3)
trailing_shapes = st.sampled_from([(), (2, 3)])  # (N, D) feature vectors and (N, C, H, W) channels


@given(n=st.integers(1, 3), sizes=sizes, trailing=trailing_shapes, seed=st.integers(0, 2**16))
def test_concat_gradients(n, sizes, trailing, seed):
    rng = np.random.default_rng(seed)
    parts = [rng.standard_normal((n, d, *trailing)) for d in sizes]
    layer = Concat()
    G = rng.standard_normal(layer.forward(parts).shape)
    dparts = layer.backward(G)

    def loss():
        return float(np.sum(layer.forward(parts) * G))

    assert len(dparts) == len(parts)
    for part, dpart in zip(parts, dparts):
        assert dpart.shape == part.shape
        assert relative_error(dpart, numerical_gradient(loss, part)) < TOL


@given(n=st.integers(1, 3), sizes=sizes, trailing=trailing_shapes, seed=st.integers(0, 2**16))
def test_split_gradients(n, sizes, trailing, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, sum(sizes), *trailing))
    layer = Split(*sizes)
    Gs = [rng.standard_normal(part.shape) for part in layer.forward(x)]
    dx = layer.backward(Gs)

    def loss():
        return float(sum(np.sum(part * G) for part, G in zip(layer.forward(x), Gs)))

    assert dx.shape == x.shape
    assert relative_error(dx, numerical_gradient(loss, x)) < TOL


@given(
    n=st.integers(1, 3), latent=st.integers(1, 4), sample_shape=st.sampled_from([(), (1,), (3,), (2, 2)]),
    beta=st.sampled_from([1.0, 0.5]), seed=st.integers(0, 2**16),
)  # fmt: skip
def test_posterior_gradients_with_sample_axes(backend, n, latent, sample_shape, beta, seed):
    """h = [mu | logvar] -> z (S..., N, L) and KL: dh through split, reparameterization and KL."""
    rng = np.random.default_rng(seed)
    posterior = DiagonalGaussian(latent)
    h = rng.standard_normal((n, 2 * latent))
    eps = rng.standard_normal((*sample_shape, n, latent))
    G = rng.standard_normal(eps.shape)

    def loss():  # sum(z * G) + beta * mean KL
        mu, logvar = posterior.split(h)
        z = posterior.rsample(mu, logvar, eps=eps)
        return float(np.sum(z * G) + beta * np.mean(posterior.kl(mu, logvar)[0]))

    mu, logvar = posterior.split(h)
    assert posterior.rsample(mu, logvar, eps=eps).shape == eps.shape
    dmu, dlogvar = posterior.rsample_backward(G)
    _, dmu_kl, dlogvar_kl = posterior.kl(mu, logvar)
    dh = posterior.join(dmu + beta * dmu_kl, dlogvar + beta * dlogvar_kl)
    assert relative_error(dh, numerical_gradient(loss, h)) < TOL


def tiny_conv_vae(rng, likelihood):
    """A small conv VAE on 1x6x6 images that uses every layer kind."""
    kw = dict(rng=rng, dtype=np.float64)
    encoder = Sequential(
        Conv2D(1, 2, 3, stride=2, padding=1, **kw), LeakyReLU(0.2),  # (N, 2, 3, 3)
        Flatten(), Dense(18, 6, **kw), Tanh(), Dense(6, 4, **kw),  # (N, 2L), L = 2
    )  # fmt: skip
    decoder = Sequential(
        Dense(2, 18, **kw), ReLU(), Reshape(2, 3, 3),  # (N, 2, 3, 3)
        ConvTranspose2D(2, 2, 3, stride=2, padding=1, output_padding=1, **kw), Sigmoid(),  # (N, 2, 6, 6)
        ConvTranspose2D(2, 1, 3, padding=1, **kw),  # (N, 1, 6, 6)
    )  # fmt: skip
    for p in [*encoder.params.values(), *decoder.params.values()]:
        p[...] = rng.standard_normal(p.shape) * 0.5
    return VAE(encoder, decoder, latent_dim=2, input_shape=(1, 6, 6), likelihood=likelihood, sigma=0.7)


@pytest.mark.parametrize("likelihood", ["bernoulli", "gaussian"])
@settings(max_examples=6)  # ~270 parameters, each differenced twice: the slowest check
@given(n=st.integers(1, 3), beta=st.sampled_from([1.0, 0.5]), seed=st.integers(0, 2**16))
def test_whole_model_gradients(backend, likelihood, n, beta, seed):
    """d(total loss)/d(every parameter), through decoder, sampling, KL and encoder (eps fixed)."""
    rng = np.random.default_rng(seed)
    model = tiny_conv_vae(rng, likelihood)
    x = (rng.random((n, 1, 6, 6)) < 0.5).astype(np.float64)
    eps = rng.standard_normal((n, 2))
    model.loss_and_grads(x, eps=eps, beta=beta)
    analytic = {k: v.copy() for k, v in model.grads.items()}

    def loss():
        return model.loss_and_grads(x, eps=eps, beta=beta)["loss"]

    assert analytic.keys() == model.params.keys()
    # Central differences lose ~eps_machine * |loss| / h to rounding: here the Gaussian loss is ~100 nats
    # while the encoder's gradients are ~0.01, so rounding alone (~2e-8) is ~1e-6 of them (seen: 1.26e-6,
    # n=1, seed 4506). A broken backward is off by far more (scaling one output by 1.001 gives 1e-3).
    for name, param in model.params.items():
        assert relative_error(analytic[name], numerical_gradient(loss, param)) < 10 * TOL, name


def test_numerical_gradient_perturbs_views_in_place():
    """encode() returns views such as h[:, :L]: differencing one must reach the original."""
    h = np.arange(1.0, 7.0).reshape(2, 3)
    view = h[:, :2]  # not contiguous
    np.testing.assert_allclose(numerical_gradient(lambda: float(np.sum(view**2)), view), 2 * view, rtol=1e-8)
    np.testing.assert_array_equal(h, np.arange(1.0, 7.0).reshape(2, 3))  # restored afterwards
