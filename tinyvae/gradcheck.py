"""Finite-difference gradients, to check the hand-written ones against.

    numeric = numerical_gradient(lambda: loss_of(params), params["weight"])
    assert relative_error(analytic, numeric) < 1e-6

Use float64: with h = 1e-6 the central difference is accurate to about 1e-9 relative,
while float32 rounding alone would swamp it.
"""

import numpy as np


def numerical_gradient(f, array, h=1e-6):
    """Central differences of the scalar ``f()`` with respect to every entry of ``array``.

    ``array`` is perturbed in place, one entry at a time, and restored:
    df/da_i ~ (f(a + h e_i) - f(a - h e_i)) / (2 h).
    """
    if array.dtype != np.float64:
        raise ValueError(f"numerical_gradient: use a float64 array (got {array.dtype}); float32 is too coarse")
    grad = np.zeros_like(array)
    for index in np.ndindex(array.shape):  # index, not a reshape: views of views work too
        original = array[index]
        array[index] = original + h
        f_plus = f()
        array[index] = original - h
        f_minus = f()
        array[index] = original
        grad[index] = (f_plus - f_minus) / (2.0 * h)
    return grad


def relative_error(analytic, numeric):
    """max_i |a_i - n_i| / max_i max(|a_i|, |n_i|): the worst error, relative to the gradient's scale.

    Scaling by the largest entry (not entry by entry) keeps tiny entries, whose finite
    differences are mostly rounding noise, from raising false alarms.
    """
    analytic, numeric = np.asarray(analytic, dtype=np.float64), np.asarray(numeric, dtype=np.float64)
    if analytic.shape != numeric.shape:
        raise ValueError(f"relative_error: shapes differ, {analytic.shape} vs {numeric.shape}")
    if analytic.size == 0:
        return 0.0
    scale = max(np.max(np.abs(analytic)), np.max(np.abs(numeric)), 1e-12)
    return float(np.max(np.abs(analytic - numeric)) / scale)


def layer_gradient_errors(layer, x, rng):
    """Check a module's backward: {"dx": error, <param name>: error} against finite differences.

    The recipe: a random G shaped like the output turns it into the scalar L = sum(out * G),
    whose gradient with respect to the output is G; ``layer.backward(G)`` must then return
    dL/dx and fill ``layer.grads``. Each is compared with :func:`numerical_gradient` of L by
    :func:`relative_error`. ``x`` and the parameters must be float64.
    """
    out = layer.forward(x)
    G = rng.standard_normal(out.shape)
    dx = layer.backward(G)
    if dx.shape != x.shape or layer.grads.keys() != layer.params.keys():
        raise ValueError(f"{layer!r}: backward gave dx {dx.shape} for x {x.shape}, grads {sorted(layer.grads)} "
                         f"for params {sorted(layer.params)}")  # fmt: skip
    analytic = {"dx": dx, **{name: grad.copy() for name, grad in layer.grads.items()}}

    def loss():
        return float(np.sum(layer.forward(x) * G))

    errors = {"dx": relative_error(analytic["dx"], numerical_gradient(loss, x))}
    for name, param in layer.params.items():
        errors[name] = relative_error(analytic[name], numerical_gradient(loss, param))
    return errors
