"""Exercise 5: implement a beta warm-up (KL annealing), and count the active units it leaves.

    python examples/exercises/beta_warmup.py

Solution. Weight the KL by beta(step) = min(1, step / warmup_steps): early steps train an
almost plain autoencoder, so the decoder learns to use z before the KL path pulls each
q(z_d | x) onto the prior. ``model.loss_and_grads(x, rng=rng, beta=...)`` takes the weight
(tinyvae/objectives.py::negative_elbo); while beta < 1 the "loss" it returns,
reconstruction + beta * KL, is not a negative ELBO: the ELBO is -(reconstruction + KL).

To see what the KL did to each latent dimension, look at two numbers per dimension d:
the batch-mean KL of that dimension, -1/2 (1 + logvar_d - mu_d^2 - e^logvar_d), and whether
the unit is active (Burda et al., 2016): Cov_x(E_q[z_d | x]) = Var_x(mu_d(x)) > 0.01. A
collapsed dimension has mu_d(x) ~ 0 and logvar_d(x) ~ 0 for every x: zero KL, inactive.

The data: 8 x 8 binary images with one bright row, anywhere in the image: one factor, so a
few of the 4 latent dimensions are enough; the rest collapse.
"""

import numpy as np

import tinyvae as tv

LATENT_DIM, STEPS, WARMUP_STEPS, BATCH = 4, 1500, 500, 32


def beta_at(step, warmup_steps=WARMUP_STEPS):
    """The KL weight at optimizer step ``step`` (0, 1, ...): a linear ramp from 0 to 1, then 1."""
    return min(1.0, step / warmup_steps)


def row_images(n, rng):
    """(n, 1, 8, 8) float64 binary images, each with one random row of ones."""
    images = np.zeros((n, 1, 8, 8))
    images[np.arange(n), 0, rng.integers(0, 8, size=n), :] = 1.0
    return images


def kl_per_dimension(model, x):
    """(L,) batch-mean KL of each latent dimension, and (L,) Var_x(mu_d(x))."""
    mu, logvar = model.encode(x)  # (N, L) each
    kl = -0.5 * (1.0 + logvar - mu**2 - np.exp(logvar))  # (N, L): the KL kernel's sum, unsummed
    return kl.mean(axis=0), mu.var(axis=0)


def train(warmup, seed=0):
    """Train a small MLP VAE with Adam; return (model, the betas used)."""
    rng = np.random.default_rng(seed)
    model = tv.mlp_vae(latent_dim=LATENT_DIM, hidden=32, input_shape=(1, 8, 8), rng=rng, dtype=np.float64)
    optimizer = tv.Adam(model.params, lr=3e-3)
    betas = []
    for step in range(STEPS):
        beta = beta_at(step) if warmup else 1.0
        terms = model.loss_and_grads(row_images(BATCH, rng), rng=rng, beta=beta)
        assert np.isclose(terms["loss"], terms["reconstruction"] + beta * terms["kl"])  # not -ELBO while beta < 1
        optimizer.step(model.grads)
        betas.append(beta)
    return model, betas


def main():
    """Print the schedule and, with and without warm-up, each dimension's KL and activity.

    The numbers after training depend on the CPU's rounding (like any training run); the
    schedule does not.
    """
    print("  beta at steps 0, 250, 500, 1499: " + ", ".join(f"{beta_at(s):.2f}" for s in (0, 250, 500, 1499)))
    test = row_images(512, np.random.default_rng(123))
    results = {}
    for warmup in (False, True):
        model, betas = train(warmup)
        kl, activity = kl_per_dimension(model, test)
        results[warmup] = {"kl": kl, "activity": activity, "active": int(np.sum(activity > 0.01)), "betas": betas}
        print(f"  warm-up {'on ' if warmup else 'off'}  KL per dimension {np.array2string(kl, precision=2)}"
              f"  Var_x mu_d {np.array2string(activity, precision=3)}"
              f"  active units: {results[warmup]['active']} of {LATENT_DIM}")  # fmt: skip
    return results


if __name__ == "__main__":
    main()
