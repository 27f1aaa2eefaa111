"""Exercise 2: add a baseline to the score-function estimator, without adding bias.

    python examples/exercises/score_baseline.py

Solution. E[grad log q(z)] = integral of grad q = grad 1 = 0, so subtracting any b that does
not depend on z leaves the estimator unbiased: E[(f(z) - b) grad log q(z)] = E[f(z) grad log q(z)].
In practice E[f] is unknown. With S samples, the leave-one-out baseline
b_i = mean of f(z_j) over j != i is independent of z_i, so it is a valid baseline for sample i:

    g = (1/S) sum_i (f(z_i) - b_i) grad log q(z_i).

The script estimates dJ/dmu for J = E[(z - 2)^2], z ~ N(0.5, 1) (exact value -3), with S = 16
samples, over 4000 runs, with and without the baseline.
"""

import numpy as np

MU, LOGVAR, C, S, TRIALS = 0.5, 0.0, 2.0, 16, 4000


def score_gradients_mu(eps, leave_one_out):
    """One S-sample score-function estimate of dJ/dmu per row of ``eps`` (trials, S)."""
    sigma = np.exp(0.5 * LOGVAR)
    fz = (MU + sigma * eps - C) ** 2  # (trials, S)
    if leave_one_out:
        n = eps.shape[1]
        fz = fz - (fz.sum(axis=1, keepdims=True) - fz) / (n - 1)  # f(z_i) - mean_{j != i} f(z_j)
    return (fz * eps / sigma).mean(axis=1)  # dlog q/dmu = eps / sigma


def main(seed=0):
    """Print the mean and variance of both estimators; return {name: (mean, variance)}."""
    eps = np.random.default_rng(seed).standard_normal((TRIALS, S))
    results = {}
    for name, loo in (("no baseline", False), ("leave-one-out baseline", True)):
        runs = score_gradients_mu(eps, loo)
        results[name] = (float(runs.mean()), float(runs.var(ddof=1)))
        stderr = np.sqrt(results[name][1] / TRIALS)
        assert abs(results[name][0] - 2 * (MU - C)) < 4 * stderr, (name, results[name])  # unbiased
        print(f"  {name:<24} mean {results[name][0]:8.4f}   variance {results[name][1]:.4f}")
    ratio = results["no baseline"][1] / results["leave-one-out baseline"][1]
    print(f"  the baseline divides the variance by {ratio:.2f}")
    assert ratio > 1.5, ratio
    return results


if __name__ == "__main__":
    main()
