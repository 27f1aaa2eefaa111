"""Ready-made VAE architectures. Each preset records its arguments in ``model.config()``, so

    tinyvae.build_vae(**model.config(), rng=rng)

rebuilds the same architecture (checkpoints rely on this).
"""

import numpy as np

from .geometry import conv_output_size
from .layers import Conv2D, ConvTranspose2D, Dense, Flatten, LeakyReLU, ReLU, Reshape, Sequential, Sigmoid, Tanh
from .model import VAE
from .module import check_dtype, check_int
from .norm import BatchNorm1D, BatchNorm2D


def _input_shape(input_shape, preset):
    if not isinstance(input_shape, (tuple, list)) or len(input_shape) != 3:
        raise ValueError(f"{preset}: input_shape must be (channels, height, width), got {input_shape!r}")
    return tuple(check_int(s, "input_shape", preset, 1) for s in input_shape)


def conv_vae(latent_dim=2, input_shape=(1, 28, 28), *, rng, dtype=np.float32, likelihood="bernoulli"):
    """The TensorFlow CVAE tutorial's architecture (PyTorch-style padding), for C x H x W images.

    H and W must be multiples of 4, at least 8 (the decoder upsamples H/4 -> H/2 -> H).
    encoder: Conv C->32 (3x3, s2) ReLU, Conv 32->64 (3x3, s2) ReLU, Flatten, Dense -> 2L
    decoder: Dense L -> 32*(H/4)*(W/4) ReLU, Reshape, ConvT 32->64 (s2) ReLU, ConvT 64->32 (s2) ReLU,
             ConvT 32->C (s1): logits (Bernoulli) or means (Gaussian)
    At 1 x 28 x 28: (N, 32, 13, 13), (N, 64, 6, 6), 2304 features; decoder from (N, 32, 7, 7).
    """
    C, H, W = _input_shape(input_shape, "conv_vae")
    if H % 4 or W % 4 or min(H, W) < 8:
        raise ValueError(f"conv_vae: height and width must be multiples of 4 and >= 8, got input_shape {input_shape!r}")
    latent_dim = check_int(latent_dim, "latent_dim", "conv_vae", 1)
    kw = dict(rng=rng, dtype=dtype)
    H2, W2 = (conv_output_size(conv_output_size(s, 3, 2, 0), 3, 2, 0) for s in (H, W))  # after two stride-2 convs
    encoder = Sequential(
        Conv2D(C, 32, 3, stride=2, **kw), ReLU(),  # (N, 32, (H-1)//2, (W-1)//2)
        Conv2D(32, 64, 3, stride=2, **kw), ReLU(),  # (N, 64, H2, W2)
        Flatten(),  # (N, 64 * H2 * W2)
        Dense(64 * H2 * W2, 2 * latent_dim, **kw),  # (N, 2L)
    )  # fmt: skip
    decoder = Sequential(
        Dense(latent_dim, 32 * (H // 4) * (W // 4), **kw), ReLU(),  # (N, 32 * H/4 * W/4)
        Reshape(32, H // 4, W // 4),  # (N, 32, H/4, W/4)
        ConvTranspose2D(32, 64, 3, stride=2, padding=1, output_padding=1, **kw), ReLU(),  # (N, 64, H/2, W/2)
        ConvTranspose2D(64, 32, 3, stride=2, padding=1, output_padding=1, **kw), ReLU(),  # (N, 32, H, W)
        ConvTranspose2D(32, C, 3, stride=1, padding=1, **kw),  # (N, C, H, W)
    )  # fmt: skip
    config = {"preset": "conv", "latent_dim": latent_dim, "input_shape": [C, H, W], "likelihood": likelihood,
              "dtype": check_dtype(dtype, "conv_vae").name}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, (C, H, W), likelihood=likelihood, config=config)


def mlp_vae(latent_dim=20, hidden=500, input_shape=(1, 28, 28), *, rng, dtype=np.float32, likelihood="bernoulli"):
    """Kingma & Welling's MLP VAE: D - hidden - latent with tanh hidden units, D = prod(input_shape).

    encoder: Flatten, Dense D -> H, Tanh, Dense H -> 2L
    decoder: Dense L -> H, Tanh, Dense H -> D, Reshape to input_shape
    """
    shape = tuple(check_int(s, "input_shape", "mlp_vae", 1) for s in input_shape)
    latent_dim = check_int(latent_dim, "latent_dim", "mlp_vae", 1)
    hidden = check_int(hidden, "hidden", "mlp_vae", 1)
    D = int(np.prod(shape))
    kw = dict(rng=rng, dtype=dtype)
    encoder = Sequential(Flatten(), Dense(D, hidden, **kw), Tanh(), Dense(hidden, 2 * latent_dim, **kw))
    decoder = Sequential(Dense(latent_dim, hidden, **kw), Tanh(), Dense(hidden, D, **kw), Reshape(*shape))
    config = {"preset": "mlp", "latent_dim": latent_dim, "hidden": hidden, "input_shape": list(shape),
              "likelihood": likelihood, "dtype": check_dtype(dtype, "mlp_vae").name}  # fmt: skip
    return VAE(encoder, decoder, latent_dim, shape, likelihood=likelihood, config=config)


PRESETS = {"conv": conv_vae, "mlp": mlp_vae}


def build_vae(preset, *, rng, **kwargs):
    """Build a named preset (``"conv"``, ``"mlp"`` or ``"faces"``); keyword arguments go to its builder."""
    if preset not in PRESETS:
        raise ValueError(f"build_vae: unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    return PRESETS[preset](rng=rng, **kwargs)


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


PRESETS["faces"] = faces_vae
