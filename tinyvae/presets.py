"""Ready-made VAE architectures, and a classifier. Each preset records its arguments in ``model.config()``, so

    tinyvae.build_vae(**model.config(), rng=rng)

rebuilds the same architecture (checkpoints rely on this).
"""

import numpy as np

from .geometry import conv_output_size
from .layers import Condition, Conv2D, ConvTranspose2D, Dense, Flatten, ReLU, Reshape, Sequential, Tanh
from .model import VAE, Classifier
from .module import check_dtype, check_int


def _input_shape(input_shape, preset):
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{preset}: input_shape must be (channels, height, width), got {input_shape!r}")
    return tuple(check_int(s, "input_shape", preset, 1) for s in input_shape)


def _conditioning(num_classes, preset):
    """(the layers that join the one-hot label, its width) for a conditional preset; ([], 0) otherwise."""
    if num_classes is None:
        return [], 0
    num_classes = check_int(num_classes, "num_classes", preset, 2)
    return [Condition(num_classes)], num_classes


def conv_vae(latent_dim=2, input_shape=(1, 28, 28), *, rng, dtype=np.float32, likelihood="bernoulli",
             num_classes=None):  # fmt: skip
    """The TensorFlow CVAE tutorial's architecture (PyTorch-style padding), for C x H x W images.

    H and W must be multiples of 4, at least 8 (the decoder upsamples H/4 -> H/2 -> H).
    encoder: Conv C->32 (3x3, s2) ReLU, Conv 32->64 (3x3, s2) ReLU, Flatten, Dense -> 2L
    decoder: Dense L -> 32*(H/4)*(W/4) ReLU, Reshape, ConvT 32->64 (s2) ReLU, ConvT 64->32 (s2) ReLU,
             ConvT 32->C (s1): logits (Bernoulli) or means (Gaussian)
    At 1 x 28 x 28: (N, 32, 13, 13), (N, 64, 6, 6), 2304 features; decoder from (N, 32, 7, 7).
    num_classes (a conditional VAE, Sohn et al. 2015): the one-hot label y (K = num_classes) joins
    the flattened features before the encoder's Dense (-> 2304 + K) and z before the decoder's
    (L + K), through :class:`tinyvae.layers.Condition`.
    """
    C, H, W = _input_shape(input_shape, "conv_vae")
    if H % 4 or W % 4 or min(H, W) < 8:
        raise ValueError(f"conv_vae: height and width must be multiples of 4 and >= 8, got input_shape {input_shape!r}")
    latent_dim = check_int(latent_dim, "latent_dim", "conv_vae", 1)
    kw = dict(rng=rng, dtype=dtype)
    H2, W2 = (conv_output_size(conv_output_size(s, 3, 2, 0), 3, 2, 0) for s in (H, W))  # after two stride-2 convs
    condition, K = _conditioning(num_classes, "conv_vae")
    encoder = Sequential(
        Conv2D(C, 32, 3, stride=2, **kw), ReLU(),  # (N, 32, (H-1)//2, (W-1)//2)
        Conv2D(32, 64, 3, stride=2, **kw), ReLU(),  # (N, 64, H2, W2)
        Flatten(),  # (N, 64 * H2 * W2)
        *condition,  # (N, 64 * H2 * W2 + K): [features | onehot(y)] (conditional only)
        Dense(64 * H2 * W2 + K, 2 * latent_dim, **kw),  # (N, 2L)
    )  # fmt: skip
    decoder = Sequential(
        *_conditioning(num_classes, "conv_vae")[0],  # (N, L + K): [z | onehot(y)] (conditional only)
        Dense(latent_dim + K, 32 * (H // 4) * (W // 4), **kw), ReLU(),  # (N, 32 * H/4 * W/4)
        Reshape(32, H // 4, W // 4),  # (N, 32, H/4, W/4)
        ConvTranspose2D(32, 64, 3, stride=2, padding=1, output_padding=1, **kw), ReLU(),  # (N, 64, H/2, W/2)
        ConvTranspose2D(64, 32, 3, stride=2, padding=1, output_padding=1, **kw), ReLU(),  # (N, 32, H, W)
        ConvTranspose2D(32, C, 3, stride=1, padding=1, **kw),  # (N, C, H, W)
    )  # fmt: skip
    config = {"preset": "conv", "latent_dim": latent_dim, "input_shape": [C, H, W], "likelihood": likelihood,
              "dtype": check_dtype(dtype, "conv_vae").name, **({"num_classes": K} if K else {})}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, (C, H, W), likelihood=likelihood, config=config, num_classes=K or None)


def mlp_vae(latent_dim=20, hidden=500, input_shape=(1, 28, 28), *, rng, dtype=np.float32, likelihood="bernoulli",
            num_classes=None):  # fmt: skip
    """Kingma & Welling's MLP VAE: D - hidden - latent with tanh hidden units, D = prod(input_shape).

    encoder: Flatten, Dense D -> H, Tanh, Dense H -> 2L
    decoder: Dense L -> H, Tanh, Dense H -> D, Reshape to input_shape
    num_classes (a conditional VAE): the one-hot label joins x (D + K) and z (L + K) before the
    first Dense of the encoder and of the decoder (:class:`tinyvae.layers.Condition`).
    """
    shape = tuple(check_int(s, "input_shape", "mlp_vae", 1) for s in input_shape)
    latent_dim = check_int(latent_dim, "latent_dim", "mlp_vae", 1)
    hidden = check_int(hidden, "hidden", "mlp_vae", 1)
    D = int(np.prod(shape))
    kw = dict(rng=rng, dtype=dtype)
    condition, K = _conditioning(num_classes, "mlp_vae")
    encoder = Sequential(Flatten(), *condition, Dense(D + K, hidden, **kw), Tanh(), Dense(hidden, 2 * latent_dim, **kw))
    decoder = Sequential(*_conditioning(num_classes, "mlp_vae")[0], Dense(latent_dim + K, hidden, **kw), Tanh(),
                         Dense(hidden, D, **kw), Reshape(*shape))  # fmt: skip
    config = {"preset": "mlp", "latent_dim": latent_dim, "hidden": hidden, "input_shape": list(shape),
              "likelihood": likelihood, "dtype": check_dtype(dtype, "mlp_vae").name,
              **({"num_classes": K} if K else {})}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, shape, likelihood=likelihood, config=config, num_classes=K or None)


def conv_classifier(num_classes=10, input_shape=(1, 28, 28), channels=(32, 64), hidden=128, *, rng,
                    dtype=np.float32):  # fmt: skip
    """A small conv net for C x H x W images: two 5x5 stride-2 convolutions and two dense layers.

    Conv C->c1 (5x5, s2, p2) ReLU, Conv c1->c2 (5x5, s2, p2) ReLU, Flatten, Dense -> hidden ReLU,
    Dense -> num_classes logits. At 1 x 28 x 28: (N, 32, 14, 14), (N, 64, 7, 7), 3136 features.
    """
    C, H, W = _input_shape(input_shape, "conv_classifier")
    num_classes = check_int(num_classes, "num_classes", "conv_classifier", 2)
    if not isinstance(channels, (tuple, list)) or len(channels) != 2:
        raise ValueError(f"conv_classifier: channels must be a pair (c1, c2), got {channels!r}")
    c1, c2 = (check_int(c, "channels", "conv_classifier", 1) for c in channels)
    hidden = check_int(hidden, "hidden", "conv_classifier", 1)
    kw = dict(rng=rng, dtype=dtype)
    H2, W2 = (conv_output_size(conv_output_size(s, 5, 2, 2), 5, 2, 2) for s in (H, W))  # after two stride-2 convs
    network = Sequential(
        Conv2D(C, c1, 5, stride=2, padding=2, **kw), ReLU(),  # (N, c1, ceil(H/2), ceil(W/2))
        Conv2D(c1, c2, 5, stride=2, padding=2, **kw), ReLU(),  # (N, c2, H2, W2)
        Flatten(),  # (N, c2 * H2 * W2)
        Dense(c2 * H2 * W2, hidden, **kw), ReLU(),  # (N, hidden)
        Dense(hidden, num_classes, **kw),  # (N, num_classes): logits
    )  # fmt: skip
    config = {"preset": "conv_classifier", "num_classes": num_classes, "input_shape": [C, H, W],
              "channels": [c1, c2], "hidden": hidden, "dtype": check_dtype(dtype, "conv_classifier").name}  # fmt: skip
    return Classifier(network, num_classes, (C, H, W), config=config)


PRESETS = {"conv": conv_vae, "mlp": mlp_vae, "conv_classifier": conv_classifier}


def build_vae(preset, *, rng, **kwargs):
    """Build a named preset (``"conv"``, ``"mlp"``, or ``"conv_classifier"``, the one that is not a VAE);
    keyword arguments go to its builder. Checkpoints rebuild their model with it (``load_run``)."""
    if preset not in PRESETS:
        raise ValueError(f"build_vae: unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset](rng=rng, **kwargs)
