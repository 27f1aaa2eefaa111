"""Exercise 1: derive dL/dsigma for the toy VAE, and relate it to dL/dlogvar.

    python examples/exercises/dl_dsigma.py

Solution. With sigma as the variable, z = mu + sigma eps and
KL = -1/2 (1 + log sigma^2 - mu^2 - sigma^2), so

    dL/dsigma = dL/dz * eps  +  (sigma - 1/sigma)
                 z path          KL path

and since sigma = exp(logvar / 2), dsigma/dlogvar = sigma / 2: dL/dlogvar = (sigma / 2) dL/dsigma.
This script checks both against finite differences on the toy model of
examples/gradients_by_hand.py (same weights, same x, same eps).
"""

import importlib.util
from pathlib import Path

import numpy as np

from tinyvae.distributions import bernoulli_nll, kl_normal_standard
from tinyvae.gradcheck import numerical_gradient, relative_error

spec = importlib.util.spec_from_file_location("gradients_by_hand", Path(__file__).parents[1] / "gradients_by_hand.py")
toy = importlib.util.module_from_spec(spec)
spec.loader.exec_module(toy)


def main():
    """Print dL/dsigma (hand vs numeric) and both sides of dL/dlogvar = (sigma/2) dL/dsigma; return the errors."""
    model, x, eps = toy.build_model(), toy.X, toy.EPS
    mu, logvar = (a.copy() for a in model.encode(x))  # (1, 1) each
    sigma = np.exp(0.5 * logvar)

    def loss_of_sigma():  # the loss with sigma, not logvar, as the variable
        z = mu + sigma * eps
        kl = -0.5 * (1.0 + np.log(sigma**2) - mu**2 - sigma**2)
        return float(bernoulli_nll(model.decode(z), x)[0][0] + kl[0, 0])

    # dL/dz from one backward pass through the decoder
    _, dlogits = bernoulli_nll(model.decode(mu + sigma * eps), x)
    dz = model.decoder.backward(dlogits)  # (1, 1)
    dsigma = dz * eps + (sigma - 1.0 / sigma)  # the solution
    numeric = numerical_gradient(loss_of_sigma, sigma)

    model.posterior.rsample(mu, logvar, eps=eps)  # the sampler caches logvar and eps for its backward
    _, dlogvar_z = model.posterior.rsample_backward(dz)
    _, _, dlogvar_kl = kl_normal_standard(mu, logvar)
    dlogvar = dlogvar_z + dlogvar_kl
    errors = {"dL/dsigma": relative_error(dsigma, numeric), "chain rule": relative_error(dlogvar, 0.5 * sigma * dsigma)}
    print(f"  dL/dsigma, hand            {dsigma[0, 0]:.6f}")
    print(f"  dL/dsigma, numeric         {numeric[0, 0]:.6f}")
    print(f"  dL/dlogvar                 {dlogvar[0, 0]:.6f}")
    print(f"  (sigma / 2) * dL/dsigma    {0.5 * sigma[0, 0] * dsigma[0, 0]:.6f}")
    assert max(errors.values()) < 1e-6, errors
    return errors


if __name__ == "__main__":
    main()
