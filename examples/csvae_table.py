"""Side by side: how well the CSVAE and its baselines transfer attributes, as an attribute classifier sees it.

    python examples/classifier.py --dataset faces --size 32 --out runs/faces-judge32
    python examples/csvae.py --data faces --out runs/csvae-faces
    python examples/csvae.py --data faces --model cvae --out runs/csvae-cvae
    python examples/csvae.py --data faces --model vae --out runs/csvae-vae
    python examples/csvae_table.py --judge runs/faces-judge32 runs/csvae-faces runs/csvae-cvae runs/csvae-vae

Each run (examples/csvae.py --data faces, any --model) is loaded from its checkpoint; its test faces are
drawn again from its settings, which must be the same for all runs (the same data); the judge rates each
run's transfers (examples/csvae.py rate_transfers): for every attribute, onto the test faces without it
("add") and onto those with it ("remove"). "switched": the fraction whose transfer the judge sees with
(add) or without (remove) the attribute; "kept": the fraction whose other attributes (all the judge
knows) it sees as on the face's own reconstruction; "both": the two at once. Prints a Markdown table
and, with --out, writes it (table.md) and the rows (table.json) there.
"""

import argparse
import importlib.util
import json
import sys
from pathlib import Path

import numpy as np

from tinyvae.checkpoint import CheckpointError, load_checkpoint
from tinyvae.runner import write_text

DATA_SETTINGS = ("data", "size", "data_dir", "n_train", "n_test", "attributes")  # must agree across the runs


def _load_csvae_example():
    spec = importlib.util.spec_from_file_location("csvae_example", Path(__file__).with_name("csvae.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     epilog="\n\n".join(__doc__.split("\n\n")[1:]),
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("runs", nargs="+", help="run directories of examples/csvae.py --data faces")
    parser.add_argument("--judge", required=True, help="an attribute classifier run (examples/classifier.py "
                        "--dataset faces --out DIR) of the runs' image size")  # fmt: skip
    parser.add_argument("--out", help="write table.md and table.json into this directory")
    return parser.parse_args(argv)


def percent(x):
    return f"{100 * x:.1f}%"


def markdown(rows, runs, overall):
    """The table: one line per run, method and attribute; add / remove, then the two pooled (``overall``)."""
    lines = ["| model (run, epochs) | attribute | switched: add / remove | kept: add / remove | switched | kept "
             "| both |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for run in runs:
        mine = [r for r in rows if r["run"] == run["dir"]]
        for (method, attribute), pooled in overall(mine).items():
            ways = {r["way"]: r for r in mine if r["method"] == method and r["attribute"] == attribute}
            split = [" / ".join(percent(ways[w][k]) if w in ways else "-" for w in ("add", "remove"))
                     for k in ("switched", "others_kept")]  # fmt: skip
            lines.append(f"| {method} ({Path(run['dir']).name}, {run['epochs']}) | {attribute} | {split[0]} | "
                         f"{split[1]} | {percent(pooled['switched'])} | {percent(pooled['others_kept'])} | "
                         f"{percent(pooled['both'])} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv=None):
    """Rate every run; returns {"judge", "runs", "rows", "table"}."""
    args = parse_args(argv)
    example = _load_csvae_example()
    runs = []
    for directory in args.runs:
        try:
            ckpt = load_checkpoint(directory)
        except (FileNotFoundError, CheckpointError) as err:
            sys.exit(f"{directory}: {err}")
        cfg = ckpt.meta["config"]
        if cfg.get("data") != "faces":
            sys.exit(f"{directory}: not a faces run of examples/csvae.py (its --data is {cfg.get('data')!r})")
        settings = {k: cfg.get(k) for k in DATA_SETTINGS}
        if runs and settings != runs[0]["settings"]:
            differ = [f"{k} {settings[k]!r} (in {args.runs[0]}: {runs[0]['settings'][k]!r})" for k in DATA_SETTINGS
                      if settings[k] != runs[0]["settings"][k]]  # fmt: skip
            sys.exit(f"{directory}: trained on other data than {args.runs[0]}: {', '.join(differ)}")
        runs.append({"dir": str(directory), "settings": settings, "ckpt": ckpt, "epochs": ckpt.epoch})
    cfg = {**runs[0]["ckpt"].meta["config"], "judge": args.judge}
    try:
        judge = example.load_judge(cfg)
    except example.RunError as err:
        sys.exit(str(err))
    x, y, x_test, y_test, transform, names = example.load_data(cfg)
    rows = []
    for run in runs:
        model = run["ckpt"].build_model()
        for row in example.rate_transfers(model, judge, x_test, y_test, names, x, y, transform):
            rows.append({"run": run["dir"], **row})
    for run in runs:
        del run["ckpt"]
    table = markdown(rows, runs, example.overall)
    print(f"judge {args.judge}; {len(x_test)} test faces, {len(x)} training faces; " + ", ".join(
        f"{n} in {percent(p)} of the test faces" for n, p in zip(names, y_test.mean(axis=0))))  # fmt: skip
    print(table, end="")
    result = {"judge": args.judge, "runs": runs, "rows": rows, "table": table}
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        write_text(out / "table.md", table)
        write_text(out / "table.json", json.dumps(result, indent=1) + "\n")
    return result


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
