"""The published protocol's runs epoch by epoch: training and validation ELBO against the epoch.

    python experiments/protocol_curves.py NAME=RUN_DIR [NAME=RUN_DIR ...] [--out FIGURE.png]

One panel per run (the figure: ``experiments/figures/protocol_curves.png`` unless ``--out``), read
from its ``metrics.jsonl`` (one line per epoch): the training ELBO (the mean over the epoch's
steps, at the epoch's β) and the validation ELBO (β = 1, the 10,000 validation images), nats per
image; the end of the β warm-up and the best validation epoch are marked. The validation curve is
the one early stopping watches (patience 50 after the warm-up); the gap between the curves is the
overfitting the held-out images see. Runs that record a validation IWAE (``trainer.val_iwae_samples``,
every ``trainer.val_iwae_every`` epochs: ``experiment=protocol_ablation``) show it as a third curve.
"""

import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def curves(run_dir: Path) -> dict[str, list[float]]:
    """``{"epoch", "train_elbo", "val_elbo", "beta"}`` lists of one run's ``metrics.jsonl``, and
    ``"iwae"``: the ``(epoch, val_iwae)`` pairs of the epochs that have one (``trainer.val_iwae_samples``)."""
    rows = [json.loads(line) for line in (run_dir / "metrics.jsonl").read_text().splitlines() if line]
    found = {key: [row[key] for row in rows] for key in ("epoch", "train_elbo", "val_elbo", "beta")}
    return found | {"iwae": [(row["epoch"], row["val_iwae"]) for row in rows if "val_iwae" in row]}


def panel(ax, name: str, c: dict[str, list[float]]) -> None:
    """One run: both ELBO curves, the warm-up's end and the best epoch; the y-axis spans the
    curves after the warm-up (the first epochs' ELBO is far lower)."""
    ax.plot(c["epoch"], c["train_elbo"], lw=0.8, label="training ELBO (epoch mean, at its β)")
    ax.plot(c["epoch"], c["val_elbo"], lw=0.8, label="validation ELBO (β = 1)")
    if c["iwae"]:
        ax.plot(*zip(*c["iwae"]), "o-", ms=3, lw=0.8, label="validation IWAE (trainer.val_iwae_samples)")
    warm = next((e for e, b in zip(c["epoch"], c["beta"]) if b >= 1.0), None)  # None: still warming up
    best = c["epoch"][max(range(len(c["val_elbo"])), key=c["val_elbo"].__getitem__)]
    if warm is not None:
        ax.axvline(warm, color="grey", ls=":", lw=1, label=f"β reaches 1 (epoch {warm})")
    ax.axvline(best, color="black", ls="--", lw=1, label=f"best validation (epoch {best})")
    start = 0 if warm is None else c["epoch"].index(warm)
    later = c["train_elbo"][start:] + c["val_elbo"][start:] + [v for e, v in c["iwae"] if e >= c["epoch"][start]]
    ax.set_ylim(min(later) - 1, max(later) + 0.5)
    ax.set_title(f"{name}: {len(c['epoch'])} epochs")
    ax.set_xlabel("epoch (from 0)")
    ax.set_ylabel("ELBO (nats per image)")
    ax.grid(alpha=0.3)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", help="NAME=RUN_DIR")
    parser.add_argument("--out", default="experiments/figures/protocol_curves.png")
    args = parser.parse_args()
    runs = {name: curves(Path(d)) for name, d in (spec.split("=", 1) for spec in args.runs)}
    fig, axes = plt.subplots(1, len(runs), figsize=(6 * len(runs), 4.2), squeeze=False)
    for ax, (name, c) in zip(axes[0], runs.items()):
        panel(ax, name, c)
    curves_of = {}  # the curves' legend, once for the figure; each panel keeps its own markers
    for ax in axes[0]:
        handles, labels = ax.get_legend_handles_labels()
        curves_of |= {label: h for h, label in zip(handles, labels) if not label.startswith(("β", "best"))}
        marks = [(h, label) for h, label in zip(handles, labels) if label.startswith(("β", "best"))]
        ax.legend(*zip(*marks), loc="lower right", fontsize=8)
    fig.legend(list(curves_of.values()), list(curves_of), loc="lower center", ncol=len(curves_of),
               bbox_to_anchor=(0.5, -0.02))
    fig.suptitle("The published protocol on dynamic MNIST: ELBO per epoch")
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
