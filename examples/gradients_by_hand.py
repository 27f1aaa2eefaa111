"""One forward and one backward pass through a VAE small enough to print.

    python examples/gradients_by_hand.py

The model: a 4-pixel binary image, a 1-dimensional latent, Dense layers in float64, a fixed
seed and a fixed eps. The backward pass below is ``tinyvae.objectives.negative_elbo``'s, written
out step by step. Every gradient it produces is printed next to a central-difference
estimate of the same derivative (``tinyvae.gradcheck``), with their relative error.
A last section checks a convolution with the sum(out * G) recipe in float64 and float32, to
show how the step h and the tolerance depend on the precision.
docs/backprop-through-sampling.md derives each formula.
"""

import numpy as np

from tinyvae import VAE, Conv2D, Dense, Sequential, Tanh
from tinyvae.gradcheck import numerical_gradient, relative_error
from tinyvae.distributions import bernoulli_nll, kl_normal_standard

SEED = 0
X = np.array([[1.0, 0.0, 1.0, 1.0]])  # one image of 4 binary pixels, (N=1, D=4)
EPS = np.array([[0.5]])  # the noise draw, fixed so that the run is repeatable, (N=1, L=1)


def build_model(seed=SEED):
    """encoder: x (1, 4) -> [mu, logvar] (1, 2);  decoder: z (1, 1) -> logits (1, 4)."""
    kw = dict(rng=np.random.default_rng(seed), dtype=np.float64)
    encoder = Sequential(Dense(4, 3, **kw), Tanh(), Dense(3, 2, **kw))
    decoder = Sequential(Dense(1, 3, **kw), Tanh(), Dense(3, 4, **kw))
    return VAE(encoder, decoder, latent_dim=1, input_shape=(4,))


def fmt(array, indent):
    """Six decimals; the rows of a matrix line up under a first row printed ``indent`` columns in."""
    return np.array2string(
        array, precision=6, suppress_small=True, floatmode="fixed", prefix=" " * indent, max_line_width=120
    )


def show(name, value):
    print(f"  {name:<22} {fmt(value, 25)}")


# Central differences in float64 agree with these gradients to ~1e-10; the exact digits depend
# on the CPU's summation order, so the example prints the bound they stay under.
ERROR_BOUND = 1e-8


def error_text(error):
    """'< 1e-08' while ``error`` is under ERROR_BOUND (the same on every machine), else its value."""
    return f"< {ERROR_BOUND:.0e}" if error < ERROR_BOUND else f"{error:.1e} (above {ERROR_BOUND:.0e}!)"


def compare(errors, name, hand, loss, wrt):
    """Print the hand-derived gradient of ``loss()`` w.r.t. ``wrt`` next to its numeric estimate."""
    numeric = numerical_gradient(loss, wrt)
    errors[name] = relative_error(hand, numeric)
    print(f"  {name:<22} hand    {fmt(hand, 33)}")
    print(f"  {'':<22} numeric {fmt(numeric, 33)}   relative error {error_text(errors[name])}")


# (dtype, step h) for the precision section, and the tolerance a check in that dtype can use
PRECISION_STEPS = [(np.float64, h) for h in (1e-1, 1e-3, 1e-6)] + [(np.float32, h) for h in (1e-1, 1e-3, 1e-6)]
TOLERANCE = {np.float64: 1e-6, np.float32: 1e-2}


def check_layer(dtype, h, seed=SEED):
    """Relative error of a Conv2D + Tanh's input gradient against central differences with step h.

    The recipe for any layer: pick a random G shaped like the output; the scalar sum(out * G)
    has gradient backward(G), so one backward call is checked against numerical_gradient.
    The layer computes in ``dtype``; the finite differences perturb a float64 copy of x that is
    rounded to ``dtype`` on the way in, as a float32 model would see it.
    """
    rng = np.random.default_rng(seed)
    layer = Sequential(Conv2D(2, 3, 3, rng=rng, stride=2, padding=1, dtype=dtype), Tanh())
    x = rng.standard_normal((2, 2, 6, 6))  # (N, C, H, W)
    G = rng.standard_normal((2, 3, 3, 3)).astype(dtype)  # like the output
    layer.forward(x.astype(dtype))
    dx = layer.backward(G)  # the gradient of sum(out * G)

    def loss():
        return float(np.sum(layer.forward(x.astype(dtype)) * G))

    return relative_error(dx, numerical_gradient(loss, x, h))


def precision_table():
    """Print whether each (dtype, h) check passes its dtype's tolerance; return {(dtype name, h): error}."""
    print("\nChecking a Conv2D + Tanh with sum(out * G): the step h and the tolerance depend on the dtype")
    errors = {}
    for dtype, h in PRECISION_STEPS:
        tolerance = TOLERANCE[dtype]
        error = errors[(np.dtype(dtype).name, h)] = check_layer(dtype, h)
        passes = error < tolerance
        verdict = f"passes (relative error < {tolerance:.0e})" if passes else f"fails (relative error > {tolerance:.0e})"
        print(f"  {np.dtype(dtype).name:<8} h = {h:.0e}   {verdict}")
    return errors


def main():
    """Print the walk-through; return {gradient name: relative error vs finite differences}."""
    model = build_model()
    x, eps = X, EPS

    # Forward, as in tinyvae.objectives.negative_elbo.
    mu, logvar = model.encode(x)  # (1, 1) each
    mu, logvar = mu.copy(), logvar.copy()  # copies of views into h: nudging one must not move the other
    z = model.posterior.rsample(mu, logvar, eps=eps)  # (1, 1): z = mu + exp(logvar / 2) eps
    logits = model.decode(z)  # (1, 4)
    rec, dlogits = bernoulli_nll(logits, x)  # (1,), (1, 4)
    kl, dmu_kl, dlogvar_kl = kl_normal_standard(mu, logvar)  # (1,), (1, 1), (1, 1)

    # Backward: the same path in reverse; the KL is a second path into mu and logvar.
    dz = model.decoder.backward(dlogits)  # (1, 1)
    dmu_z, dlogvar_z = model.posterior.rsample_backward(dz)  # (1, 1) each
    dmu, dlogvar = dmu_z + dmu_kl, dlogvar_z + dlogvar_kl
    model.encoder.backward(model.posterior.join(dmu, dlogvar))  # dh = [dmu | dlogvar], (1, 2)
    hand = model.grads  # every parameter's gradient, "encoder.0.weight", ...

    print("Forward")
    show("x", x)
    show("mu", mu)
    show("logvar", logvar)
    show("sigma = exp(logvar/2)", np.exp(0.5 * logvar))
    show("eps", eps)
    show("z = mu + sigma eps", z)
    show("logits", logits)
    show("sigmoid(logits)", 1.0 / (1.0 + np.exp(-logits)))
    show("reconstruction -log p", rec)
    show("KL(q || N(0, 1))", kl)
    show("loss", rec + kl)

    # The losses seen from each intermediate, for the finite differences.
    def reconstruction_from_logits():
        return float(bernoulli_nll(logits, x)[0].mean())

    def reconstruction_from_z():
        return float(bernoulli_nll(model.decode(z), x)[0].mean())

    def reconstruction_from_mu_logvar():  # the path through z only
        return float(bernoulli_nll(model.decode(model.posterior.rsample(mu, logvar, eps=eps)), x)[0].mean())

    def kl_from_mu_logvar():  # the analytic KL path only
        return float(kl_normal_standard(mu, logvar)[0].mean())

    def loss_from_mu_logvar():
        return reconstruction_from_mu_logvar() + kl_from_mu_logvar()

    def loss_from_params():
        return model.loss_and_grads(x, eps=eps)["loss"]

    errors = {}
    print("\nBackward: hand-derived gradients against central differences")
    compare(errors, "dL/dlogits", dlogits, reconstruction_from_logits, logits)
    compare(errors, "dL/dz", dz, reconstruction_from_z, z)
    compare(errors, "dL/dmu, z path", dmu_z, reconstruction_from_mu_logvar, mu)
    compare(errors, "dL/dmu, KL path", dmu_kl, kl_from_mu_logvar, mu)
    compare(errors, "dL/dmu", dmu, loss_from_mu_logvar, mu)
    compare(errors, "dL/dlogvar, z path", dlogvar_z, reconstruction_from_mu_logvar, logvar)
    compare(errors, "dL/dlogvar, KL path", dlogvar_kl, kl_from_mu_logvar, logvar)
    compare(errors, "dL/dlogvar", dlogvar, loss_from_mu_logvar, logvar)

    print("\nParameters: dL/dparam, by hand and numerically")
    for name, param in model.params.items():
        compare(errors, name, hand[name], loss_from_params, param)

    model.loss_and_grads(x, eps=eps)
    same = all(np.array_equal(model.grads[k], hand[k]) for k in hand)
    print(f"\nVAE.loss_and_grads gives the same parameter gradients as the walk above: {same}")
    print(f"largest relative error: {error_text(max(errors.values()))}")
    precision_table()
    return errors


if __name__ == "__main__":
    main()
