"""Evaluate a trained VAE on a whole data set, in batches: ELBO, IWAE bound, latent codes, PCA.

    rng = np.random.default_rng(0)
    mean_elbo(model, test_x, rng)             # nats per image (higher is better)
    mean_iwae_bound(model, test_x, 100, rng)  # a tighter lower bound on log p(x)
    latent_statistics(model, test_x)          # KL per latent dimension, active units
    accuracy(classifier, test_x, test_labels) # a classifier's fraction of right answers
    label_accuracy(cvae, classifier, 1000, rng)  # how often a classifier sees the class a CVAE was asked for
    attribute_accuracy(judge, faces, attributes) # an attribute classifier's accuracy, attribute by attribute
    attribute_edit_rates(vae, judge, faces, "Smiling", vector, 2.0)  # does adding 2 x the vector make them smile?
    judged_edits(judge, [(reconstructions, edits)], "Smiling", True)  # any edits, judged against reconstructions
"""

import numpy as np

from .distributions import check_attributes
from .module import check_input, check_int
from .objectives import elbo, iwae_bound


def _batches(x, batch_size, y=None):
    """Consecutive batches (x[i:j], y[i:j]), y[i:j] None if y is."""
    batch_size = check_int(batch_size, "batch_size", "evaluate", 1)
    for start in range(0, x.shape[0], batch_size):
        yield x[start : start + batch_size], None if y is None else y[start : start + batch_size]


def mean_elbo(model, x, rng, batch_size=500, y=None):
    """Mean over x (N, ...) of the one-sample ELBO per example (objectives.elbo), in nats.

    y: the labels (N,) of a conditional model (here and below): then of log p(x | y).
    """
    return float(np.concatenate([elbo(model, b, rng, yb) for b, yb in _batches(x, batch_size, y)]).mean())


def mean_iwae_bound(model, x, k, rng, batch_size=250, y=None):
    """Mean over x (N, ...) of the k-sample importance-weighted bound on log p(x), in nats."""
    return float(np.concatenate([iwae_bound(model, b, k, rng, yb) for b, yb in _batches(x, batch_size, y)]).mean())


def latent_means(model, x, batch_size=500, y=None):
    """The posterior means mu(x), (N, latent_dim)."""
    return np.concatenate([model.encode(b, yb)[0] for b, yb in _batches(x, batch_size, y)])


def accuracy(classifier, x, labels, batch_size=500):
    """The fraction of x (N, ...) that ``classifier.predict`` assigns to its label (N,)."""
    predicted = np.concatenate([classifier.predict(b) for b, _ in _batches(x, batch_size)])
    return float(np.mean(predicted == labels))


def check_judge(model, classifier):
    """Raise ValueError unless ``classifier`` can judge the samples of the conditional ``model``."""
    from .model import Classifier

    if getattr(model, "num_classes", None) is None:
        raise ValueError("label_accuracy: the model is not conditional (num_classes None); there is no class to judge")
    if not isinstance(classifier, Classifier):
        raise ValueError(f"label_accuracy: the judge must be a Classifier, got a {type(classifier).__name__}")
    if classifier.multilabel:
        raise ValueError(f"label_accuracy: the judge must be a Classifier of classes, got a multi-label "
                         f"{type(classifier).__name__}")  # fmt: skip
    theirs = (classifier.num_classes, tuple(classifier.input_shape), np.dtype(classifier.dtype).name)
    ours = (model.num_classes, tuple(model.input_shape), np.dtype(model.dtype).name)
    if theirs != ours:
        raise ValueError(f"label_accuracy: the judge takes {theirs[0]} classes of {theirs[1]} {theirs[2]} images, "
                         f"but the model makes {ours[0]} classes of {ours[1]} {ours[2]} images")  # fmt: skip


def label_accuracy(model, classifier, n_per_class, rng, batch_size=500):
    """Generate ``n_per_class`` samples of every class y with a conditional model, classify them; returns

    {"overall": the fraction classified as the class they were drawn for, "per_class": that
    fraction for each class (a list of num_classes floats), "n_per_class": n_per_class}.
    A sample is E[x | z, y], z ~ N(0, I) from ``rng``: the decoder's pixel probabilities, used
    as they are, not binarized. They lie in [0, 1] like the grayscale images a classifier trains
    on (examples/classifier.py), while a Bernoulli draw would add pixel noise it never saw:
    the judge would then rate that noise as much as the class.
    """
    check_judge(model, classifier)
    n_per_class = check_int(n_per_class, "n_per_class", "label_accuracy", 1)
    y = np.repeat(np.arange(model.num_classes), n_per_class)  # (K * n_per_class,) class by class
    batch_size = check_int(batch_size, "batch_size", "label_accuracy", 1)
    batches = (y[start : start + batch_size] for start in range(0, len(y), batch_size))
    predicted = np.concatenate([classifier.predict(model.sample(len(yb), rng, y=yb)) for yb in batches])
    right = (predicted == y).reshape(model.num_classes, n_per_class)  # (K, n_per_class)
    return {"overall": float(right.mean()), "per_class": right.mean(axis=1).tolist(), "n_per_class": n_per_class}


def attribute_predictions(judge, x, batch_size=500):
    """``judge.predict`` of x (N, ...) in batches: (N, A) bool, one column per ``judge.attributes``."""
    return np.concatenate([judge.predict(b) for b, _ in _batches(x, batch_size)])


def attribute_accuracy(judge, x, attributes, batch_size=500):
    """{name: the fraction of x whose attribute ``judge.predict`` gets right}, for each of ``judge.attributes``.

    attributes: (N, A) 0/1, the true attributes of x, columns in the order of ``judge.attributes``.
    """
    truth = check_attributes(attributes, len(x), judge.num_classes, "attribute_accuracy").astype(bool)
    right = attribute_predictions(judge, x, batch_size) == truth  # (N, A)
    return dict(zip(judge.attributes, right.mean(axis=0).tolist()))


def check_attribute_judge(judge, input_shape, dtype, names=()):
    """Raise ValueError unless ``judge`` is an AttributeClassifier of (N, *input_shape) ``dtype`` images that
    knows the attributes ``names``."""
    if not getattr(judge, "multilabel", False):
        raise ValueError(f"attribute judge: expected an AttributeClassifier (examples/classifier.py --dataset faces), "
                         f"got a {type(judge).__name__}")  # fmt: skip
    theirs = (tuple(judge.input_shape), np.dtype(judge.dtype).name)
    ours = (tuple(input_shape), np.dtype(dtype).name)
    if theirs != ours:
        raise ValueError(f"attribute judge: it takes {theirs[0]} {theirs[1]} images, but the model makes {ours[0]} "
                         f"{ours[1]} images")  # fmt: skip
    unknown = [name for name in names if name not in judge.attributes]
    if unknown:
        raise ValueError(f"attribute judge: it does not know {', '.join(unknown)}; it classifies "
                         f"{', '.join(judge.attributes)}")  # fmt: skip


def attribute_edit_rates(model, judge, x, attribute, vector, factor, batch_size=500):
    """Add ``factor`` x ``vector`` to the codes of x, decode, and let the judge say what changed. Returns

    {"switched": the fraction of x whose decoded edit the judge sees with the attribute if factor > 0
    (without it if factor < 0); "others_kept": the fraction whose every other attribute the judge sees
    the same on the edit as on the reconstruction; "both": the fraction with both; "n": len(x); "factor"}.

    x (N, C, H, W): images, typically all without the attribute (factor > 0: add it) or all with it
    (factor < 0: remove it). The edit is E[x | z] at z = mu(x) + factor * vector (vector (L,), e.g.
    :func:`tinyvae.latent_edit.attribute_vector`); the reconstruction is E[x | z] at z = mu(x). The other
    attributes are compared with the reconstruction's, not with x's: both are decoded, so a change
    is the edit's, while what the decoder loses anyway (e.g. thin glasses blurred away) counts for neither.
    """
    check_attribute_judge(judge, model.input_shape, model.dtype, [attribute])
    check_input(x, model.input_shape, model.dtype, "attribute_edit_rates")
    if not np.isfinite(factor) or factor == 0:
        raise ValueError(f"attribute_edit_rates: factor must be a nonzero finite number (> 0 adds the attribute, "
                         f"< 0 removes it), got {factor!r}")  # fmt: skip
    vector = np.asarray(vector, dtype=model.dtype)
    if vector.shape != (model.latent_dim,):
        raise ValueError(f"attribute_edit_rates: vector must be ({model.latent_dim},) like a code, got {vector.shape}")
    step = (factor * vector).astype(model.dtype)  # (L,)

    def decoded_pairs():  # batch by batch: the reconstructions and the edits, (n, C, H, W) each
        for b, _ in _batches(x, batch_size):
            mu = model.encode(b)[0]  # (n, L)
            yield model.mean(model.decode(mu)), model.mean(model.decode(mu + step))

    return {**judged_edits(judge, decoded_pairs(), attribute, factor > 0), "factor": float(factor)}


def judged_edits(judge, pairs, attribute, on):
    """How ``judge`` sees edits of ``attribute`` (one of ``judge.attributes``), each against its reconstruction.

    pairs: an iterable of batches (reconstructions, edits), two arrays of images that pair up row by row.
    Returns {"switched": the fraction of edits it sees with the attribute if ``on`` (without it otherwise);
    "others_kept": the fraction whose every other attribute it sees as on the reconstruction; "both": the two
    at once; "n": the number of edits}. Shared by :func:`attribute_edit_rates` (a VAE's attribute vector) and
    :func:`tinyvae.csvae.judged_transfer` (a CSVAE's or a conditional VAE's transfers).
    """
    column = judge.attributes.index(attribute)
    others = [a for a in range(len(judge.attributes)) if a != column]
    switched, kept = [], []
    for reconstructions, edits in pairs:
        seen, edited = judge.predict(reconstructions), judge.predict(edits)  # (n, A) each
        switched.append(edited[:, column] == bool(on))  # (n,)
        kept.append(np.all(edited[:, others] == seen[:, others], axis=1))  # (n,)
    switched, kept = np.concatenate(switched), np.concatenate(kept)
    return {"switched": float(switched.mean()), "others_kept": float(kept.mean()),
            "both": float((switched & kept).mean()), "n": len(switched)}  # fmt: skip


ACTIVE_UNIT_THRESHOLD = 0.01  # Burda et al. (2016): a unit is active if Var_x(E_q[z_d | x]) > 0.01


def latent_statistics(model, x, batch_size=500, threshold=ACTIVE_UNIT_THRESHOLD, y=None):
    """Where the KL goes, per latent dimension d, over the data set x (N, ...). Returns a dict:

    "kl_per_dim": mean over x of KL(q(z_d | x) || N(0, 1)) = 1/2 (mu_d^2 + exp(logvar_d) - 1 - logvar_d),
        a list of L floats (nats) that sums to the mean KL of the ELBO;
    "mu_variance": Var_x(mu_d(x)), how much the posterior mean of z_d moves across the data;
    "active": [Var_x(mu_d) > threshold per d]; "active_units": how many are (Burda et al. 2016).
    A dimension that is inactive carries no information about x: its posterior collapsed to the prior.
    """
    kl_sum, mus = 0.0, []
    for b, yb in _batches(x, batch_size, y):
        mu, logvar = (a.astype(np.float64) for a in model.encode(b, yb))  # (n, L) each
        kl_sum = kl_sum + np.sum(0.5 * (mu * mu + np.exp(logvar) - 1.0 - logvar), axis=0)  # (L,)
        mus.append(mu)
    variance = np.concatenate(mus).var(axis=0)  # (L,)
    active = variance > threshold
    return {"kl_per_dim": (kl_sum / x.shape[0]).tolist(), "mu_variance": variance.tolist(),
            "active": active.tolist(), "active_units": int(active.sum())}  # fmt: skip


def pca(z, n_components=2):
    """Project z (N, D) on its first principal components via SVD.

    Returns (projection (N, n_components), explained-variance ratio (n_components,)).
    The sign of each component is fixed so that its largest loading is positive.
    """
    centered = z - z.mean(axis=0)  # (N, D)
    _, s, vt = np.linalg.svd(centered, full_matrices=False)  # vt (min(N, D), D)
    components = vt[:n_components]  # (n_components, D)
    signs = np.sign(components[np.arange(len(components)), np.abs(components).argmax(axis=1)])
    components = components * signs[:, None]
    variance = s**2
    return centered @ components.T, variance[:n_components] / variance.sum()
