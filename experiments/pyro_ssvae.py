"""Pyro's semi-supervised VAE tutorial (M2 of Kingma et al. 2014), ported to run here as a baseline.

    python experiments/pyro_ssvae.py [--data mnist|digits] [--root DIR] [--labelled 100] [--epochs 50]
                                     [--seconds S] [--seed 0] [--device cpu|cuda|auto] [--threads 1]
                                     [--out result.json] [--progress/--no-progress]

The baseline "Pyro's SS-VAE tutorial run here with the same budget" for our own M2
(``pyro-mvae train prior=mixture guide=... data.labelled=100``). Source read:
pyro-ppl/pyro ``examples/vae/ss_vae_M2.py`` and ``examples/vae/utils/custom_mlp.py`` at commit
ff6ae1c9572591791aae8842bcd702fcf0b46fd6 (the files as last changed by 64e71eee, Pyro 1.9.1).

Kept from the tutorial, at its defaults:

* model: z ~ N(0, I) (z_dim 50), y ~ OneHotCategorical(1/10), x ~ Bernoulli(decoder(z, y)) with
  ``validate_args=False`` on the grey levels; guide: y ~ OneHotCategorical(encoder_y(x)) when y is
  not observed, z ~ N(encoder_z(x, y)); all under one ``pyro.plate("data")``;
* networks: MLPs with one hidden layer of 500 softplus units whose weights and biases are drawn from
  N(0, 0.001²) (output layers at PyTorch's default initialisation); encoder_y ends in a softmax,
  encoder_z in two heads (loc, exp(·) for the scale), the decoder in a sigmoid; inputs concatenated
  after broadcasting their batch shapes (the enumerated y);
* inference: ``config_enumerate(guide, "parallel", expand=True)`` with
  ``TraceEnum_ELBO(max_plate_nesting=1, strict_enumeration_warning=False)``, and the auxiliary
  classification loss (``--aux-loss``, multiplier 46) as a second SVI on model_classify/guide_classify
  with ``Trace_ELBO``; both SVIs share one ``pyro.optim.Adam`` (lr 0.00042, betas (0.9, 0.999)) and
  both step on every batch, as in the tutorial. On an unlabelled batch the auxiliary SVI has no sample
  site: its loss is 0 and, the gradients having been zeroed (not freed) by the first SVI, Adam still
  moves every parameter by its momentum; this is the tutorial's behaviour and is kept;
* batches of 200; an epoch goes through the labelled and the unlabelled images once each, both
  shuffled, with batch i labelled when i % (N_train // N_labelled) == 1 until the labelled batches are
  used up (the tutorial's run_inference_for_epoch); 50 epochs;
* classifier argmax q(y | x); the test error reported is the one at the epoch of the best (lowest,
  first on ties) validation error, as the tutorial's "corresponding testing accuracy".

Differs from the tutorial, and why:

* data: the package's loaders (:func:`pyro_mvae.data.build_dataset`, grey levels in
  [0, 1], not binarised) instead of ``mnist_cached``, so both methods see the same images. The MNIST
  split is the same protocol (50k train / the last 10k of the training file for validation / 10k
  test); ``--data digits`` adds scikit-learn's 8×8 digits (1200/300/297) for quick checks;
* labelled images: chosen by the package's :func:`~pyro_mvae.data.labelled.choose_labelled`
  (balanced by class, NumPy generator seeded with ``--seed``), the same images as our M2 runs, instead
  of ``np.random.shuffle`` per class; the rest of the training split is unlabelled;
* batching: tensors on the device sliced by a ``torch.randperm`` order (torch's global generator,
  seeded by ``pyro.set_rng_seed(seed)``) instead of DataLoaders. The tutorial asserts that the batch
  size divides every set; here the last batch of a set may be smaller (100 labelled images: one
  labelled batch of 100 per epoch), and should the unlabelled batches run out first the remaining
  labelled batches follow them instead of the epoch stopping on an exhausted iterator;
* errors: the fraction of misclassified images over the whole set under ``torch.no_grad()``, where
  the tutorial divides the correct count by (number of batches × batch size); the two agree when the
  batch size divides the set (MNIST) and the error here is exact otherwise (digits);
* the auxiliary loss is always on (the tutorial's flag is off by default but on in its documented
  runs); the loss recorded for unlabelled batches is the ELBO loss only (their auxiliary loss is 0);
* no visdom plots, log file, JIT option or Pyro version assertion (Pyro 1.9.2 is installed); instead
  a JSON record (``--out``), a wall-clock budget (``--seconds``), ``--device`` and a tqdm bar.

Record: per epoch the epoch, its seconds (steps and evaluation; ``train_seconds``: steps only), the
losses per image (``unsup_loss``: −ELBO on unlabelled images; ``sup_loss``: −ELBO(x, y) on labelled
ones; ``sup_aux_loss``: 46 · −log q(y | x) on labelled ones) and the validation and test errors; then
``best_val_epoch``, ``test_error_at_best_val`` and ``seconds_per_epoch`` (mean).
"""

import argparse
import json
import math
import os
import sys
import time
from pathlib import Path

import pyro
import pyro.distributions as dist
import torch
import torch.nn as nn
import torch.nn.functional as F
from pyro.infer import SVI, Trace_ELBO, TraceEnum_ELBO, config_enumerate
from pyro.optim import Adam
from tqdm import tqdm

from pyro_mvae.data import build_dataset
from pyro_mvae.data.labelled import choose_labelled
from pyro_mvae.data.splits import resolve_root
from pyro_mvae.errors import UserError

SOURCE = "pyro-ppl/pyro examples/vae/ss_vae_M2.py @ ff6ae1c9572591791aae8842bcd702fcf0b46fd6"
TUTORIAL = {"z_dim": 50, "hidden_layers": [500], "aux_loss_multiplier": 46.0, "enum_discrete": "parallel",
            "learning_rate": 0.00042, "beta_1": 0.9, "batch_size": 200}
"""The tutorial's defaults, kept fixed (its example run's ``-b1 0.95`` is not its default)."""
CLASSES = 10


class MLP(nn.Module):
    """custom_mlp.MLP as the tutorial uses it: the inputs ``(..., D_i)`` broadcast to one batch shape
    and concatenated, softplus hidden layers (weights and biases ~ N(0, 0.001²)), then one linear head
    per ``(size, activation)`` of ``heads`` (activation None: none); returns the head's output
    ``(..., size)``, or a list of them for several heads."""

    def __init__(self, input_size: int, hidden: list[int], heads: list[tuple[int, nn.Module | None]]):
        super().__init__()
        layers, last = [], input_size
        for size in hidden:
            linear = nn.Linear(last, size)
            nn.init.normal_(linear.weight, 0.0, 0.001)
            nn.init.normal_(linear.bias, 0.0, 0.001)
            layers += [linear, nn.Softplus()]
            last = size
        self.body = nn.Sequential(*layers)
        self.heads = nn.ModuleList(nn.Sequential(nn.Linear(last, size), *([act] if act is not None else []))
                                   for size, act in heads)

    def forward(self, *inputs: torch.Tensor):
        shape = torch.broadcast_shapes(*(x.shape[:-1] for x in inputs))
        hidden = self.body(torch.cat([x.expand(*shape, -1) for x in inputs], dim=-1))
        outputs = [head(hidden) for head in self.heads]
        return outputs[0] if len(outputs) == 1 else outputs


class Exp(nn.Module):
    """exp(·) elementwise, the scale head of encoder_z."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.exp(x)


class SSVAE(nn.Module):
    """The tutorial's SS-VAE on flattened images x ``(B, D)`` and one-hot labels y ``(B, 10)``."""

    def __init__(self, input_size: int, z_dim: int, hidden: list[int], aux_loss_multiplier: float):
        super().__init__()
        self.z_dim, self.aux_loss_multiplier = z_dim, aux_loss_multiplier
        self.encoder_y = MLP(input_size, hidden, [(CLASSES, nn.Softmax(dim=1))])
        self.encoder_z = MLP(input_size + CLASSES, hidden, [(z_dim, None), (z_dim, Exp())])
        self.decoder = MLP(z_dim + CLASSES, hidden, [(input_size, nn.Sigmoid())])

    def model(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """p(z) = N(0, I) ``(B, z_dim)``, p(y) = Cat(1/10) ``(B, 10)`` (observed when ys is given),
        p(x | y, z) = Bernoulli(decoder(z, y)) ``(B, D)`` (``(10, B, ·)`` under enumeration)."""
        pyro.module("ss_vae", self)
        batch, dtype, device = xs.shape[0], xs.dtype, xs.device
        with pyro.plate("data"):
            zs = pyro.sample("z", dist.Normal(torch.zeros(batch, self.z_dim, dtype=dtype, device=device),
                                              torch.ones(batch, self.z_dim, dtype=dtype, device=device)).to_event(1))
            alpha_prior = torch.ones(batch, CLASSES, dtype=dtype, device=device) / CLASSES
            ys = pyro.sample("y", dist.OneHotCategorical(alpha_prior), obs=ys)
            loc = self.decoder(zs, ys)
            pyro.sample("x", dist.Bernoulli(loc, validate_args=False).to_event(1), obs=xs)

    def guide(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """q(y | x) = Cat(encoder_y(x)) ``(B, 10)`` when ys is None, q(z | x, y) = N(encoder_z(x, y))
        ``(B, z_dim)`` (``(10, B, z_dim)`` with y enumerated)."""
        with pyro.plate("data"):
            if ys is None:
                ys = pyro.sample("y", dist.OneHotCategorical(self.encoder_y(xs)))
            loc, scale = self.encoder_z(xs, ys)
            pyro.sample("z", dist.Normal(loc, scale).to_event(1))

    def model_classify(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """The auxiliary loss: ``aux_loss_multiplier`` · −log q(y | x) on labelled xs ``(B, D)``,
        ys ``(B, 10)``; nothing on unlabelled ones."""
        pyro.module("ss_vae", self)
        with pyro.plate("data"):
            if ys is not None:
                with pyro.poutine.scale(scale=self.aux_loss_multiplier):
                    pyro.sample("y_aux", dist.OneHotCategorical(self.encoder_y(xs)), obs=ys)

    def guide_classify(self, xs: torch.Tensor, ys: torch.Tensor | None = None) -> None:
        """The empty guide of :meth:`model_classify`."""

    def classify(self, xs: torch.Tensor) -> torch.Tensor:
        """argmax q(y | x): the class ``(B,)`` of images xs ``(B, D)``."""
        return self.encoder_y(xs).argmax(dim=-1)


def batches(n: int, batch_size: int, device) -> list[torch.Tensor]:
    """Row indices ``(≤ batch_size,)`` of n rows in a random order, the last batch possibly smaller."""
    order = torch.randperm(n, device=device)
    return list(order.split(batch_size))


def train_epoch(svis: list[SVI], labelled: tuple[torch.Tensor, torch.Tensor], unlabelled: torch.Tensor,
                interval: int, batch_size: int, bar: tqdm) -> tuple[list[float], list[float]]:
    """One epoch of the tutorial's run_inference_for_epoch: every SVI steps on each batch, batch i
    labelled when i % ``interval`` == 1 (or when the unlabelled batches are used up) until the
    labelled ones are. ``labelled``: x ``(N_l, D)`` and one-hot y ``(N_l, 10)``; ``unlabelled``:
    x ``(N_u, D)``. Returns the summed losses of each SVI on labelled and on unlabelled batches."""
    device = unlabelled.device
    sup, unsup = batches(len(labelled[0]), batch_size, device), batches(len(unlabelled), batch_size, device)
    sup_losses, unsup_losses = [0.0] * len(svis), [0.0] * len(svis)
    done_sup = done_unsup = 0
    for i in range(len(sup) + len(unsup)):
        if done_sup < len(sup) and (i % interval == 1 or done_unsup == len(unsup)):
            rows = sup[done_sup]
            done_sup += 1
            for k, svi in enumerate(svis):
                sup_losses[k] += svi.step(labelled[0][rows], labelled[1][rows])
        else:
            rows = unsup[done_unsup]
            done_unsup += 1
            for k, svi in enumerate(svis):
                unsup_losses[k] += svi.step(unlabelled[rows])
        bar.update(1)
    return sup_losses, unsup_losses


@torch.no_grad()
def error(vae: SSVAE, x: torch.Tensor, y: torch.Tensor, batch_size: int) -> float:
    """Fraction of images x ``(N, D)`` whose argmax q(y | x) is not their label y ``(N,)``."""
    wrong = sum(int((vae.classify(xb) != yb).sum()) for xb, yb in zip(x.split(batch_size), y.split(batch_size)))
    return wrong / len(y)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available) as a device.

    Raises:
        UserError: for cuda asked on a machine without it.
    """
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here; give --device cpu (or auto)")
    return torch.device("cuda" if name == "cuda" or (name == "auto" and torch.cuda.is_available()) else "cpu")


def run(args) -> dict:
    """Train the tutorial's SS-VAE as ``args`` say; returns the record (see the module docstring).

    Raises:
        UserError: for data that cannot be loaded, a bad ``--labelled`` or an absent device.
    """
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    pyro.set_rng_seed(args.seed)
    pyro.clear_param_store()
    options = {"name": args.data, "binarize": False}
    if args.data == "mnist":
        options |= {"root": str(resolve_root(args.root)), "download": False}
    data = build_dataset(options, device)
    train = data.train
    chosen = torch.as_tensor(choose_labelled(train.y.cpu().numpy(), args.labelled, CLASSES, args.seed),
                             device=device)
    mask = torch.zeros(len(train), dtype=torch.bool, device=device)
    mask[chosen] = True
    x_train = train.x.flatten(1)  # (N, D)
    labelled = (x_train[mask], F.one_hot(train.y[mask], CLASSES).to(x_train.dtype))  # (N_l, D), (N_l, 10)
    unlabelled = x_train[~mask]  # (N_u, D)
    interval = len(train) // args.labelled  # the tutorial's periodic_interval_batches
    x_val, x_test = data.val.x.flatten(1), data.test.x.flatten(1)

    t = TUTORIAL
    vae = SSVAE(x_train.shape[1], t["z_dim"], t["hidden_layers"], t["aux_loss_multiplier"]).to(device)
    optimizer = Adam({"lr": t["learning_rate"], "betas": (t["beta_1"], 0.999)})
    guide = config_enumerate(vae.guide, t["enum_discrete"], expand=True)
    svis = [SVI(vae.model, guide, optimizer, loss=TraceEnum_ELBO(max_plate_nesting=1,
                                                                 strict_enumeration_warning=False)),
            SVI(vae.model_classify, vae.guide_classify, optimizer, loss=Trace_ELBO())]

    bs = t["batch_size"]
    steps = math.ceil(len(labelled[0]) / bs) + math.ceil(len(unlabelled) / bs)
    epochs, elapsed = [], 0.0
    with tqdm(total=args.epochs * steps, unit="step", desc="ssvae", disable=not args.progress) as bar:
        for epoch in range(args.epochs):
            tic = time.perf_counter()
            sup, unsup = train_epoch(svis, labelled, unlabelled, interval, bs, bar)
            train_seconds = time.perf_counter() - tic
            record = {"epoch": epoch, "unsup_loss": unsup[0] / len(unlabelled), "sup_loss": sup[0] / len(chosen),
                      "sup_aux_loss": sup[1] / len(chosen), "val_error": error(vae, x_val, data.val.y, bs),
                      "test_error": error(vae, x_test, data.test.y, bs)}
            record |= {"seconds": time.perf_counter() - tic, "train_seconds": train_seconds}
            epochs.append(record)
            elapsed += record["seconds"]
            bar.set_postfix(val_error=f"{record['val_error']:.4f}", refresh=False)
            if args.seconds is not None and elapsed >= args.seconds:
                break

    best = min(epochs, key=lambda r: r["val_error"])  # the first of the lowest
    protocol = {**vars(args), "out": None if args.out is None else str(args.out), "device": str(device),
                "data_root": options.get("root"), **TUTORIAL, "n_train": len(train),
                "n_unlabelled": len(unlabelled), "supervised_interval": interval, "pyro": pyro.__version__,
                "torch": torch.__version__, "source": SOURCE}
    return {"protocol": protocol, "epochs": epochs, "best_val_epoch": best["epoch"],
            "val_error_at_best_val": best["val_error"], "test_error_at_best_val": best["test_error"],
            "test_error_last": epochs[-1]["test_error"], "seconds_per_epoch": elapsed / len(epochs)}


def write_json(path: Path, record: dict) -> None:
    """Write ``record`` to ``path`` atomically (a temporary file beside it, then ``os.replace``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(record, indent=2) + "\n")
    os.replace(temporary, path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", choices=["mnist", "digits"], default="mnist")
    parser.add_argument("--root", default=None,
                        help="folder holding MNIST/raw/ (default: $PYRO_MVAE_DATA, else ~/.cache/pyro_mvae/data)")
    parser.add_argument("--labelled", type=int, default=100, help="training images that keep their labels")
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=None,
                        help="wall-clock budget: stop after the epoch that passes it")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", choices=["cpu", "cuda", "auto"], default="cpu")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="JSON record (default: print the summary only)")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=True,
                        help="tqdm bar over the steps")
    args = parser.parse_args()
    if args.epochs < 1 or args.threads < 1:
        parser.error("--epochs and --threads must be at least 1")
    try:
        record = run(args)
    except UserError as exc:
        names = " (in this script data.root is --root, data.labelled is --labelled; it does not download)"
        print(f"pyro_ssvae: error: {exc}{names if 'data.' in str(exc) else ''}", file=sys.stderr)
        sys.exit(2)
    if args.out is not None:
        write_json(args.out, record)
    print(f"pyro_ssvae: {args.data}, {args.labelled} labelled, {len(record['epochs'])} epoch(s) "
          f"({record['seconds_per_epoch']:.1f} s/epoch): test error {record['test_error_at_best_val']:.4f} "
          f"at the best validation epoch {record['best_val_epoch']} (validation error "
          f"{record['val_error_at_best_val']:.4f}); last test error {record['test_error_last']:.4f}"
          + (f"; wrote {args.out}" if args.out is not None else ""))


if __name__ == "__main__":
    main()
