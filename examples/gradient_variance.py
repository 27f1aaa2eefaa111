"""Why reparameterize? Two unbiased estimators of one gradient, and their variance.

    python examples/gradient_variance.py [--out runs/gradient_variance.png] [--trials 4000] [--seed 0]

We want the gradient of J(mu, logvar) = E_{z ~ N(mu, exp(logvar))}[f(z)] with f(z) = (z - c)^2,
which has a closed form: J = (mu - c)^2 + exp(logvar), so

    dJ/dmu = 2 (mu - c),    dJ/dlogvar = exp(logvar).

Both estimators average a per-sample gradient over S draws z = mu + sigma eps, eps ~ N(0, 1):

    pathwise (reparameterization):  f'(z) dz/dtheta, i.e. Reparameterize.backward(f'(z)):
                                    dmu = 2 (z - c),  dlogvar = 2 (z - c) * sigma eps / 2
    score function (REINFORCE):     f(z) dlog q(z)/dtheta:
                                    dmu = f(z) eps / sigma,  dlogvar = f(z) (eps^2 - 1) / 2

Each S-sample estimate is repeated over ``trials`` independent runs; the mean and variance of
those runs are printed as a table and plotted against S. Both estimators are unbiased, but the
score function uses only the values of f, not its slope, and pays for it in variance.
"""

import argparse
from pathlib import Path

import numpy as np

from tinyvae import Reparameterize

SAMPLE_SIZES = (1, 4, 16, 64, 256)
PARAMS = ("mu", "logvar")
STATS = ("pathwise_mean", "pathwise_var", "score_mean", "score_var")


def f(z, c):
    return (z - c) ** 2


def df_dz(z, c):
    return 2.0 * (z - c)


def exact_gradient(mu, logvar, c):
    """(dJ/dmu, dJ/dlogvar) for J = E[(z - c)^2] = (mu - c)^2 + exp(logvar)."""
    return {"mu": 2.0 * (mu - c), "logvar": float(np.exp(logvar))}


def pathwise_gradients(eps, mu, logvar, c):
    """Per-sample reparameterization gradients, each shaped like ``eps`` (trials, S)."""
    sampler = Reparameterize()  # the layer the VAE uses
    z = sampler.forward(np.full_like(eps, mu), np.full_like(eps, logvar), eps=eps)  # (trials, S)
    dmu, dlogvar = sampler.backward(df_dz(z, c))
    return {"mu": dmu, "logvar": dlogvar}


def score_function_gradients(eps, mu, logvar, c):
    """Per-sample score-function gradients f(z) dlog q(z)/dtheta, each shaped like ``eps``."""
    sigma = np.exp(0.5 * logvar)
    fz = f(mu + sigma * eps, c)  # (trials, S)
    # log q(z) = -(z - mu)^2 / (2 exp(logvar)) - logvar / 2 + const and (z - mu) / sigma = eps, so
    # dlog q/dmu = (z - mu) / sigma^2 = eps / sigma and dlog q/dlogvar = (eps^2 - 1) / 2.
    return {"mu": fz * eps / sigma, "logvar": fz * 0.5 * (eps * eps - 1.0)}


def estimate(sample_sizes=SAMPLE_SIZES, trials=4000, mu=0.5, logvar=0.0, c=2.0, seed=0):
    """Mean and variance, over ``trials`` runs, of each estimator's S-sample gradient.

    Returns {"samples": (len(sample_sizes),) array, "trials", "setting": {"mu", "logvar", "c"},
    "mu": {...}, "logvar": {...}}; each parameter's dict holds "exact" (a float) and the STATS
    (arrays over sample_sizes). Both estimators see the same eps.
    """
    rng = np.random.default_rng(seed)
    exact = exact_gradient(mu, logvar, c)
    results = {"samples": np.array(sample_sizes), "trials": trials, "setting": {"mu": mu, "logvar": logvar, "c": c}}
    for p in PARAMS:
        results[p] = {"exact": exact[p], **{k: np.empty(len(sample_sizes)) for k in STATS}}
    for i, S in enumerate(sample_sizes):
        eps = rng.standard_normal((trials, S))
        for name, per_sample in (("pathwise", pathwise_gradients), ("score", score_function_gradients)):
            grads = per_sample(eps, mu, logvar, c)
            for p in PARAMS:
                runs = grads[p].mean(axis=1)  # (trials,): one S-sample estimate per run
                results[p][f"{name}_mean"][i] = runs.mean()
                results[p][f"{name}_var"][i] = runs.var(ddof=1)
    return results


def print_table(results):
    mu, logvar, c = (results["setting"][k] for k in ("mu", "logvar", "c"))
    print(f"f(z) = (z - {c:g})^2,  z ~ N(mu = {mu:g}, exp(logvar = {logvar:g}))")
    print(f"{results['trials']} runs per row; mean and variance are over the runs")
    print(
        f"{'param':<7} {'samples':>7} {'exact':>8} {'pathwise mean':>14} {'score mean':>11} "
        f"{'pathwise var':>13} {'score var':>10}"
    )
    for p in PARAMS:
        r = results[p]
        for i, S in enumerate(results["samples"]):
            print(
                f"{p:<7} {S:>7} {r['exact']:>8.4f} {r['pathwise_mean'][i]:>14.4f} {r['score_mean'][i]:>11.4f} "
                f"{r['pathwise_var'][i]:>13.4f} {r['score_var'][i]:>10.4f}"
            )


def plot(results, out):
    """Variance (left) and mean ± 2 standard errors (right) against S, one row per parameter."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    S, trials = results["samples"], results["trials"]
    fig, axes = plt.subplots(len(PARAMS), 2, figsize=(10, 7), constrained_layout=True)
    for row, p in zip(axes, PARAMS):
        r = results[p]
        for name, label, color in (("pathwise", "reparameterization", "C0"), ("score", "score function", "C3")):
            row[0].loglog(S, r[f"{name}_var"], "o-", color=color, label=label)
            stderr = np.sqrt(r[f"{name}_var"] / trials)
            row[1].errorbar(S, r[f"{name}_mean"], yerr=2 * stderr, fmt="o-", color=color, capsize=3, label=label)
        row[1].axhline(r["exact"], color="k", linestyle="--", label="exact")
        row[1].set_xscale("log")
        row[0].set(xlabel="samples S", ylabel="variance", title=f"variance of the dJ/d{p} estimate")
        row[1].set(xlabel="samples S", ylabel=f"dJ/d{p}", title=f"mean of the dJ/d{p} estimate (± 2 s.e.)")
        row[0].legend()
        row[1].legend()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=100)
    plt.close(fig)


def main(argv=None):
    """Print the table, write the plot to ``--out``; return the numbers from :func:`estimate`."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("runs") / "gradient_variance.png", help="PNG path")
    parser.add_argument("--trials", type=int, default=4000, help="independent runs per sample size")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    results = estimate(trials=args.trials, seed=args.seed)
    print_table(results)
    plot(results, args.out)
    print(f"wrote {args.out}")
    return results


if __name__ == "__main__":
    main()
