"""Ready-made VAE architectures, and two classifiers. Each preset records its arguments in ``model.config()``, so

    tinyvae.build_vae(**model.config(), rng=rng)

rebuilds the same architecture (checkpoints rely on this).
"""

import numpy as np

from .csvae import conv_csvae, faces_cvae, mlp_csvae
from .geometry import conv_output_size
from .layers import (
    Condition, Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, ReLU, Reshape, Sequential, Sigmoid, Tanh,
)  # fmt: skip
from .model import VAE, AttributeClassifier, Classifier
from .module import check_dtype, check_int
from .norm import BatchNorm1D, BatchNorm2D


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
            num_classes=None, depth=1):  # fmt: skip
    """Kingma & Welling's MLP VAE: D - hidden - latent with tanh hidden units, D = prod(input_shape).

    encoder: Flatten, Dense D -> H, Tanh, Dense H -> 2L
    decoder: Dense L -> H, Tanh, Dense H -> D, Reshape to input_shape
    depth: hidden layers (Dense H -> H, Tanh) in each network; Burda et al.'s one-stochastic-layer
    IWAE model is ``mlp_vae(50, hidden=200, depth=2)``.
    num_classes (a conditional VAE): the one-hot label joins x (D + K) and z (L + K) before the
    first Dense of the encoder and of the decoder (:class:`tinyvae.layers.Condition`).
    """
    shape = tuple(check_int(s, "input_shape", "mlp_vae", 1) for s in input_shape)
    latent_dim = check_int(latent_dim, "latent_dim", "mlp_vae", 1)
    hidden = check_int(hidden, "hidden", "mlp_vae", 1)
    depth = check_int(depth, "depth", "mlp_vae", 1)
    D = int(np.prod(shape))
    kw = dict(rng=rng, dtype=dtype)
    condition, K = _conditioning(num_classes, "mlp_vae")

    def deeper():  # the hidden layers after the first: (N, H) -> (N, H)
        return [layer for _ in range(depth - 1) for layer in (Dense(hidden, hidden, **kw), Tanh())]

    encoder = Sequential(Flatten(), *condition, Dense(D + K, hidden, **kw), Tanh(), *deeper(),
                         Dense(hidden, 2 * latent_dim, **kw))  # fmt: skip
    decoder = Sequential(*_conditioning(num_classes, "mlp_vae")[0], Dense(latent_dim + K, hidden, **kw), Tanh(),
                         *deeper(), Dense(hidden, D, **kw), Reshape(*shape))  # fmt: skip
    config = {"preset": "mlp", "latent_dim": latent_dim, "hidden": hidden, "depth": depth, "input_shape": list(shape),
              "likelihood": likelihood, "dtype": check_dtype(dtype, "mlp_vae").name,
              **({"num_classes": K} if K else {})}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, shape, likelihood=likelihood, config=config, num_classes=K or None)


def _conv_network(input_shape, channels, hidden, outputs, preset, kw):
    """The classifiers' network: ((C, H, W), config entries {input_shape, channels, hidden}, the Sequential)."""
    C, H, W = _input_shape(input_shape, preset)
    if not isinstance(channels, (tuple, list)) or len(channels) != 2:
        raise ValueError(f"{preset}: channels must be a pair (c1, c2), got {channels!r}")
    c1, c2 = (check_int(c, "channels", preset, 1) for c in channels)
    hidden = check_int(hidden, "hidden", preset, 1)
    H2, W2 = (conv_output_size(conv_output_size(s, 5, 2, 2), 5, 2, 2) for s in (H, W))  # after two stride-2 convs
    network = Sequential(
        Conv2D(C, c1, 5, stride=2, padding=2, **kw), ReLU(),  # (N, c1, ceil(H/2), ceil(W/2))
        Conv2D(c1, c2, 5, stride=2, padding=2, **kw), ReLU(),  # (N, c2, H2, W2)
        Flatten(),  # (N, c2 * H2 * W2)
        Dense(c2 * H2 * W2, hidden, **kw), ReLU(),  # (N, hidden)
        Dense(hidden, outputs, **kw),  # (N, outputs): logits
    )  # fmt: skip
    return (C, H, W), {"input_shape": [C, H, W], "channels": [c1, c2], "hidden": hidden}, network


def conv_classifier(num_classes=10, input_shape=(1, 28, 28), channels=(32, 64), hidden=128, *, rng,
                    dtype=np.float32):  # fmt: skip
    """A small conv net for C x H x W images: two 5x5 stride-2 convolutions and two dense layers.

    Conv C->c1 (5x5, s2, p2) ReLU, Conv c1->c2 (5x5, s2, p2) ReLU, Flatten, Dense -> hidden ReLU,
    Dense -> num_classes logits. At 1 x 28 x 28: (N, 32, 14, 14), (N, 64, 7, 7), 3136 features.
    """
    num_classes = check_int(num_classes, "num_classes", "conv_classifier", 2)
    shape, entries, network = _conv_network(input_shape, channels, hidden, num_classes, "conv_classifier",
                                            dict(rng=rng, dtype=dtype))  # fmt: skip
    config = {"preset": "conv_classifier", "num_classes": num_classes, **entries,
              "dtype": check_dtype(dtype, "conv_classifier").name}  # fmt: skip
    return Classifier(network, num_classes, shape, config=config)


def attribute_classifier(attributes, input_shape=(3, 64, 64), channels=(32, 64), hidden=128, *, rng,
                         dtype=np.float32):  # fmt: skip
    """conv_classifier's network with one logit per attribute: a multi-label :class:`AttributeClassifier`.

    attributes: the names of the A attributes (the logits' columns, in order), e.g. CelebA's.
    At 3 x 64 x 64: (N, 32, 32, 32), (N, 64, 16, 16), 16384 features, Dense -> 128 -> A.
    """
    if not isinstance(attributes, (tuple, list)) or not attributes:
        raise ValueError(f"attribute_classifier: attributes must be a non-empty list of names, got {attributes!r}")
    shape, entries, network = _conv_network(input_shape, channels, hidden, len(attributes), "attribute_classifier",
                                            dict(rng=rng, dtype=dtype))  # fmt: skip
    config = {"preset": "attribute_classifier", "attributes": list(attributes), **entries,
              "dtype": check_dtype(dtype, "attribute_classifier").name}  # fmt: skip
    return AttributeClassifier(network, list(attributes), shape, config=config)


def faces_vae(latent_dim=200, input_shape=(3, 64, 64), channels=(32, 64, 64, 64), sigma=0.1, *, rng,
              dtype=np.float32):  # fmt: skip
    """The faces VAE of "Generative Deep Learning" (Foster), VAE chapter, for C x H x W images in [0, 1].

    encoder: per c in ``channels``: Conv 3x3 stride 2 padding 1 -> BatchNorm2D -> LeakyReLU(0.3)
             (each halves H and W, rounding up), then Flatten, Dense -> 2L = [mu | logvar]
    decoder: Dense L -> the encoder's last feature map, BatchNorm1D, LeakyReLU(0.3), Reshape, then the
             mirror image: ConvTranspose 3x3 stride 2 (output_padding 1 where the encoder's size was even)
             -> BatchNorm2D -> LeakyReLU(0.3), through the channels in reverse, the last one to C channels
             followed by a Sigmoid: the mean of p(x | z) = N(mean, sigma^2 I), in (0, 1).
    At 3 x 64 x 64 with channels (32, 64, 64, 64): (N, 32, 32, 32), (N, 64, 16, 16), (N, 64, 8, 8), (N, 64, 4, 4),
    1024 features; 32 x 32 gives (N, 64, 2, 2). LeakyReLU's slope 0.3 is Keras's default, the book's.

    sigma (default 0.1, on pixels in [0, 1]) is the noise the likelihood allows around the decoded mean:
    a pixel off by 0.1 (25 of 255 levels) costs half a nat, so edges, eyes and glasses must be drawn to about
    that accuracy to pay for the nats their latent code costs in the KL term. The book's loss, w x mean squared
    error over the D = C*H*W values plus the KL, is this Gaussian with sigma^2 = D / (2 w): its
    w = 2000 at 32 x 32 x 3 is sigma ~ 0.88 (sigma^2 ~ 0.77), weighing reconstruction 77 times less than
    sigma = 0.1 does. A smaller sigma weighs reconstruction more (sharper faces, more nats of KL, a posterior
    further from N(0, I)); sigma only scales the reconstruction term, as 1 / beta does in a beta-VAE
    (measured on 8000 synthetic 64 x 64 faces, 6 epochs: KL 379 nats/face at sigma 0.1, 214 at sigma 0.2).
    """
    C, H, W = _input_shape(input_shape, "faces_vae")
    latent_dim = check_int(latent_dim, "latent_dim", "faces_vae", 1)
    if not isinstance(channels, (tuple, list)) or not channels:
        raise ValueError(f"faces_vae: channels must be a non-empty list of channel counts, got {channels!r}")
    channels = [check_int(c, "channels", "faces_vae", 1) for c in channels]
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) or not 0.0 < sigma < float("inf"):
        raise ValueError(f"faces_vae: sigma must be a finite number > 0, got {sigma!r}")
    kw = dict(rng=rng, dtype=dtype)
    sizes = [(H, W)]  # the feature map's height and width after each stride-2 conv
    for _ in channels:
        sizes.append(tuple(conv_output_size(s, 3, 2, 1) for s in sizes[-1]))
    encoder_layers = []
    for c_in, c_out in zip([C, *channels], channels):
        encoder_layers += [Conv2D(c_in, c_out, 3, stride=2, padding=1, **kw), BatchNorm2D(c_out, dtype=dtype),
                           LeakyReLU(0.3)]  # (N, c_out, ceil(H/2), ceil(W/2)) of the layer's input  # fmt: skip
    h, w = sizes[-1]
    features = channels[-1] * h * w
    encoder = Sequential(*encoder_layers, Flatten(), Dense(features, 2 * latent_dim, **kw))  # (N, 2L)
    decoder_layers = [Dense(latent_dim, features, **kw), BatchNorm1D(features, dtype=dtype), LeakyReLU(0.3),
                      Reshape(channels[-1], h, w)]  # (N, channels[-1], h, w)  # fmt: skip
    outs = [*channels[-2::-1], C]  # the channels in reverse, ending with the image's
    for i, (c_in, c_out) in enumerate(zip(channels[::-1], outs)):
        (H_out, W_out), (H_in, W_in) = sizes[-2 - i], sizes[-1 - i]
        output_padding = (H_out - (2 * H_in - 1), W_out - (2 * W_in - 1))  # 1 where the size was even, else 0
        decoder_layers.append(ConvTranspose2D(c_in, c_out, 3, stride=2, padding=1, output_padding=output_padding,
                                              **kw))  # (N, c_out, H_out, W_out)  # fmt: skip
        last = i == len(channels) - 1
        decoder_layers += [Sigmoid()] if last else [BatchNorm2D(c_out, dtype=dtype), LeakyReLU(0.3)]
    decoder = Sequential(*decoder_layers)  # (N, C, H, W) in (0, 1)
    config = {"preset": "faces", "latent_dim": latent_dim, "input_shape": [C, H, W], "channels": channels,
              "sigma": float(sigma), "dtype": check_dtype(dtype, "faces_vae").name}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, (C, H, W), likelihood="gaussian", sigma=sigma, config=config)


PRESETS = {"conv": conv_vae, "mlp": mlp_vae, "faces": faces_vae, "conv_classifier": conv_classifier,
           "attribute_classifier": attribute_classifier, "csvae": mlp_csvae, "conv_csvae": conv_csvae,
           "faces_cvae": faces_cvae}


def build_vae(preset, *, rng, **kwargs):
    """Build a named preset (``"conv"``, ``"mlp"``, ``"faces"``, the faces baseline ``"faces_cvae"``, the CSVAEs
    ``"csvae"`` and ``"conv_csvae"``, or the classifiers ``"conv_classifier"`` and ``"attribute_classifier"``);
    keyword arguments go to its builder. Checkpoints rebuild their model with it (``load_run``)."""
    if preset not in PRESETS:
        raise ValueError(f"build_vae: unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset](rng=rng, **kwargs)
