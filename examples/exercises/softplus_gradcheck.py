"""Exercise 3: write a Softplus layer and check its backward with tinyvae.gradcheck.

    python examples/exercises/softplus_gradcheck.py

Solution. softplus(x) = log(1 + e^x), computed as logaddexp(0, x) so that e^x never overflows;
its derivative is the logistic sigmoid, 1 / (1 + e^-x). The check is the recipe of the guide's
section 10: a random G shaped like the output makes sum(out * G) a scalar whose gradient is
backward(G); compare that with central differences, in float64.
"""

import numpy as np

from tinyvae import Module
from tinyvae.gradcheck import numerical_gradient, relative_error


class Softplus(Module):
    def forward(self, x):
        self._x = x  # cached: backward needs x
        self._out_shape = x.shape
        return np.logaddexp(0.0, x)

    def backward(self, dout):
        """dx = dout * sigmoid(x), since softplus'(x) = e^x / (1 + e^x)."""
        self._check_dout(dout)
        return dout * 0.5 * (1.0 + np.tanh(0.5 * self._x))  # sigmoid without overflow


def main(seed=0):
    """Check Softplus on a batch that includes large |x|; return the relative error."""
    rng = np.random.default_rng(seed)
    layer = Softplus()
    x = np.concatenate([rng.standard_normal((2, 5)), [[-800.0, -30.0, 0.0, 30.0, 800.0]]])  # (3, 5), float64
    G = rng.standard_normal(x.shape)
    out = layer.forward(x)
    dx = layer.backward(G)
    numeric = numerical_gradient(lambda: float(np.sum(layer.forward(x) * G)), x)
    error = relative_error(dx, numeric)
    print(f"  softplus at -800, 0, 800:  {out[2, 0]:.6f} {out[2, 2]:.6f} {out[2, 4]:.6f}")
    print(f"  Softplus backward against central differences: relative error < 1e-06: {error < 1e-6}")
    assert np.all(np.isfinite(out)) and error < 1e-6, error
    return error


if __name__ == "__main__":
    main()
