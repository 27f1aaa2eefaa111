"""Exercise 4: predict the conv preset's shapes by hand, then check them against tinyvae.conv_vae.

    python examples/exercises/conv_shapes.py

Solution. A convolution with kernel k, stride s, padding p maps a side of n pixels to
floor((n + 2p - k) / s) + 1 (tinyvae/geometry.py); a transposed convolution maps n to
(n - 1) s - 2p + k + output_padding. For a 1 x 28 x 28 image and latent_dim = 2:

    encoder  Conv 1->32 (k3, s2, p0):   28 -> floor(25 / 2) + 1 = 13
             Conv 32->64 (k3, s2, p0):  13 -> floor(10 / 2) + 1 = 6
             Flatten: 64 * 6 * 6 = 2304;  Dense -> 2 * latent_dim = 4
    decoder  Dense 2 -> 32 * 7 * 7 = 1568, Reshape (32, 7, 7)
             ConvT 32->64 (k3, s2, p1, op1):  (7 - 1) 2 - 2 + 3 + 1 = 14
             ConvT 64->32 (k3, s2, p1, op1):  (14 - 1) 2 - 2 + 3 + 1 = 28
             ConvT 32->1 (k3, s1, p1):       (28 - 1) 1 - 2 + 3 + 0 = 28
"""

import numpy as np

import tinyvae as tv

PREDICTED = {  # by hand, from the docstring: the output shape of each layer, without the batch axis
    "encoder": [(32, 13, 13), (32, 13, 13), (64, 6, 6), (64, 6, 6), (2304,), (4,)],
    "decoder": [(1568,), (1568,), (32, 7, 7), (64, 14, 14), (64, 14, 14), (32, 28, 28), (32, 28, 28), (1, 28, 28)],
}


def main():
    """Run one image through conv_vae layer by layer; print and compare each shape; return the shapes."""
    model = tv.conv_vae(latent_dim=2, rng=np.random.default_rng(0))
    measured = {}
    inputs = {"encoder": np.zeros((1, 1, 28, 28), np.float32), "decoder": np.zeros((1, 2), np.float32)}  # (N, ...)
    for part, first_input in inputs.items():
        net, out, measured[part] = getattr(model, part), first_input, []
        for i in range(len(net)):
            out = net[i].forward(out)
            measured[part].append(out.shape[1:])
            layer, predicted = type(net[i]).__name__, PREDICTED[part][i]
            print(f"  {part}.{i:<2} {layer:<16} predicted {predicted!s:<14} got {out.shape[1:]}")
    assert measured == PREDICTED, measured
    return measured


if __name__ == "__main__":
    main()
