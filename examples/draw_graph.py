"""Draw the VAE's computational graph, with the two gradient paths into mu and logvar.

    python examples/draw_graph.py [--out docs/images/vae_graph.png]

Needs matplotlib (``pip install -e ".[plot]"``). Black arrows are the forward pass; eps enters
from outside the graph (dashed: nothing flows back into it); the blue arrows are the gradient of
the loss along the z path, the orange ones along the KL path. docs/backprop-through-sampling.md
shows the picture this writes.
"""

import argparse
from pathlib import Path

# name: (x, y, label, face colour); x and y in the axes' data units
NODES = {
    "x": (0.5, 3.0, "$x$\nimage", "#eeeeee"),
    "h": (2.3, 3.0, "$h$ = encoder($x$)\n(N, 2L)", "#dde8f5"),
    "mu": (4.5, 4.3, r"$\mu$", "#dde8f5"),
    "logvar": (4.5, 1.7, r"logvar", "#dde8f5"),
    "sigma": (6.6, 1.7, r"$\sigma = e^{\mathrm{logvar}/2}$", "#dde8f5"),
    "eps": (8.6, 0.3, r"$\varepsilon \sim \mathcal{N}(0, I)$" + "\n(from outside)", "#ffffff"),
    "z": (8.6, 3.0, r"$z = \mu + \sigma\,\varepsilon$", "#dde8f5"),
    "rec": (10.9, 3.0, "decoder($z$) $\\to$ logits\n" + r"$-\log p(x \mid z)$", "#dde8f5"),
    "kl": (6.6, 5.6, r"KL$(q \,\|\, \mathcal{N}(0, I))$", "#f7e6d5"),
    "loss": (12.6, 4.6, r"$\mathcal{L}$", "#eeeeee"),
}
FORWARD = [("x", "h"), ("h", "mu"), ("h", "logvar"), ("logvar", "sigma"), ("mu", "z"), ("sigma", "z"),
           ("z", "rec"), ("rec", "loss"), ("mu", "kl"), ("logvar", "kl"), ("kl", "loss")]  # fmt: skip
# gradient arrows: (from, to, bend, label, label position)
Z_PATH = [("rec", "z", -0.5, r"$\partial\mathcal{L}/\partial z$", (9.75, 2.25)),
          ("z", "mu", 0.25, r"$\times 1$", (6.9, 4.55)),
          ("z", "sigma", -0.3, r"$\times\,\varepsilon$", (8.0, 1.75)),
          ("sigma", "logvar", -0.5, r"$\times\,\sigma/2$", (5.55, 0.95))]  # fmt: skip
KL_PATH = [("kl", "mu", 0.3, r"$\beta\mu$", (5.05, 5.35)),
           ("kl", "logvar", 0.6, r"$\beta(e^{\mathrm{logvar}}-1)/2$", (3.35, 4.75))]  # fmt: skip


def draw(out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(10, 4.6))
    ax.set(xlim=(-0.2, 13.2), ylim=(-0.4, 6.2))
    ax.axis("off")
    boxes = {}
    for name, (x, y, label, color) in NODES.items():
        style = "round,pad=0.3,rounding_size=0.15"
        linestyle = "--" if name == "eps" else "-"
        boxes[name] = ax.text(x, y, label, ha="center", va="center", fontsize=10, zorder=3,
                              bbox=dict(boxstyle=style, fc=color, ec="black", ls=linestyle))  # fmt: skip
    fig.canvas.draw()  # the boxes need their sizes before arrows can stop at their edges

    def arrow(a, b, color, rad, linestyle="-"):
        ax.annotate("", xy=NODES[b][:2], xytext=NODES[a][:2], zorder=2,
                    arrowprops=dict(arrowstyle="-|>", color=color, lw=1.6, ls=linestyle,
                                    connectionstyle=f"arc3,rad={rad}",
                                    patchA=boxes[a].get_bbox_patch(), patchB=boxes[b].get_bbox_patch()))  # fmt: skip

    for a, b in FORWARD:
        arrow(a, b, "black", 0.0)
    arrow("eps", "z", "black", 0.0, linestyle="--")
    for path, color, text_color in ((Z_PATH, "tab:blue", "tab:blue"), (KL_PATH, "tab:orange", "chocolate")):
        for a, b, rad, label, (lx, ly) in path:
            arrow(a, b, color, rad)
            ax.text(lx, ly, label, color=text_color, fontsize=9, ha="center", va="center", zorder=4)
    ax.plot([], [], color="black", label="forward")
    ax.plot([], [], color="tab:blue", label=r"gradient, $z$ path (through the decoder)")
    ax.plot([], [], color="tab:orange", label="gradient, KL path (closed form)")
    ax.legend(loc="lower left", fontsize=9, frameon=False)
    ax.set_title("One VAE step: forward (black) and the two gradient paths into $\\mu$ and logvar", fontsize=11)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs") / "images" / "vae_graph.png", help="PNG path")
    args = parser.parse_args(argv)
    draw(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
