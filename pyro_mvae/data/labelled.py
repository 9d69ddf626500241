"""Semi-supervised training, Kingma et al. 2014's M2: the component c of a mixture prior as the class.

With ``data.labelled=N``, N training images keep their labels, balanced by class and chosen by
the run's seed (:func:`choose_labelled`, recorded in ``RUN_DIR/labelled.json``); the other
training images are unlabelled. Each training step on an unlabelled batch is followed by one on a
labelled batch, drawn by (seed, epoch, step) so that a resumed run takes the same batches
(:meth:`LabelledSet.batch`). On a labelled image the model observes c = y and the loss is
−(ELBO(x, y) + α · log q(c = y | x)) (Kingma et al. 2014, eqs. 6 and 9), α =
``trainer.alpha`` (default 0.1 · N_train / N_labelled, their α = 0.1 · N over the labelled mean).
"""

import math
from dataclasses import dataclass

import numpy as np
import torch

from pyro_mvae.data.splits import Dataset, Split
from pyro_mvae.errors import ConfigError, DataError
from pyro_mvae.models.modes import evaluates
from pyro_mvae.models.vae import check_labels_component


def default_alpha(n_train: int, n_labelled: int) -> float:
    """α = 0.1 · N_train / N_labelled: Kingma et al. 2014's α = 0.1 · N on the classification
    term's mean over the labelled images, put on each labelled image's own term."""
    return 0.1 * n_train / n_labelled


def choose_labelled(y: np.ndarray, n: int, classes: int, seed: int) -> np.ndarray:
    """Indices (sorted, ``(n,)``) of n images of labels y ``(N,)`` that keep their labels: n // C of
    each of the C = ``classes`` classes, the remainder one more for the first classes, drawn
    without replacement by NumPy's generator seeded with ``seed``.

    Raises:
        DataError: for n below C, or a class with fewer images than asked of it.
    """
    if n < classes:
        raise DataError(f"data.labelled={n} cannot hold one image of each of the {classes} classes: "
                        f"give data.labelled={classes} or more (e.g. {10 * classes}, {10} per class)")
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(classes):
        count = n // classes + (label < n % classes)
        pool = np.flatnonzero(y == label)
        if len(pool) < count:
            raise DataError(f"data.labelled={n} asks {count} images of class {label}, and the training "
                            f"split has {len(pool)}: give a smaller data.labelled")
        chosen.append(rng.choice(pool, count, replace=False))
    return np.sort(np.concatenate(chosen))


@dataclass
class LabelledSet:
    """The labelled images (``labelled``, a :class:`~pyro_mvae.data.splits.Split` with x ``(N_l,
    *event)`` and y ``(N_l,)``), the unlabelled rest of the training split (``unlabelled``), the
    chosen ``indices`` into the training split ``(N_l,)``, α and the labelled batch size."""

    labelled: Split
    unlabelled: Split
    indices: np.ndarray
    alpha: float
    batch_size: int

    def batch(self, seed: int, epoch: int, step: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The labelled batch ``(x (B_l, *event), y (B_l,))`` that follows unlabelled step ``step``
        of ``epoch``: the labelled set is gone through in orders seeded by (seed, epoch, cycle),
        binarised afresh when the training split is."""
        per_cycle = math.ceil(len(self.labelled) / self.batch_size)
        cycle, position = divmod(step, per_cycle)
        order_seed = (seed * 1_000_003 + epoch) * 1_000_033 + cycle
        order = torch.randperm(len(self.labelled), device=self.labelled.x.device,
                               generator=torch.Generator(self.labelled.x.device).manual_seed(order_seed))
        rows = order[position * self.batch_size:(position + 1) * self.batch_size]  # (B_l,)
        part = Split(self.labelled.x[rows], self.labelled.y[rows], self.labelled.dynamic,
                     self.labelled.dequantize_levels)
        return next(part.batches(len(rows))), part.y

    def record(self, seed: int) -> dict:
        """What ``RUN_DIR/labelled.json`` holds: the seed, α, the batch size, the count per class
        and the indices into the training split."""
        counts = torch.bincount(self.labelled.y).tolist()
        return {"labelled": len(self.labelled), "seed": seed, "alpha": self.alpha, "batch_size": self.batch_size,
                "per_class": counts, "indices": self.indices.tolist()}


def labelled_set(vae, train: Split, n: int, seed: int, batch_size: int, alpha: float | None) -> LabelledSet:
    """Split ``train`` into n labelled images (:func:`choose_labelled`, C = the prior's components)
    and the unlabelled rest, for ``vae``; labelled batches of min(``batch_size``, n) images;
    ``alpha`` None: :func:`default_alpha`.

    Raises:
        PairingError: a prior or guide that cannot observe c (prior=mixture and a mixture guide can).
        ConfigError: training labels over another number of classes than C, or a single class.
        DataError: see :func:`choose_labelled`; n leaving no unlabelled image.
    """
    check_labels_component(vae)
    classes = vae.prior.layout.components
    labels = train.y.cpu().numpy()  # device: the host chooses the indices
    found = int(labels.max()) + 1
    if found < 2:
        raise ConfigError("data.labelled needs class labels, and every training label is 0 (an array file "
                          "without 'y', or a data set without labels): give labels or drop data.labelled")
    if found != classes:
        raise ConfigError(f"data.labelled needs one mixture component per class: the training labels run "
                          f"over {found} classes and prior.components={classes}; set prior.components={found}")
    if n >= len(train):
        raise DataError(f"data.labelled={n} leaves no unlabelled image of the {len(train)} training "
                        f"images: give a smaller data.labelled")
    indices = choose_labelled(labels, n, classes, seed)
    keep = torch.ones(len(train), dtype=torch.bool, device=train.x.device)
    keep[torch.as_tensor(indices, device=train.x.device)] = False
    rows = torch.as_tensor(indices, device=train.x.device)

    def part(index):
        return Split(train.x[index], train.y[index], train.dynamic, train.dequantize_levels)

    return LabelledSet(part(rows), part(keep), indices,
                       default_alpha(len(train), n) if alpha is None else alpha, min(batch_size, n))


def labelled_for(vae, data: Dataset, seed: int, batch_size: int, alpha: float | None,
                 world: int = 1) -> LabelledSet | None:
    """The :func:`labelled_set` of ``data.labelled`` images of ``data``'s training split for ``vae``
    (None without ``data.labelled``), as a training run of ``world`` processes would use it.

    Raises:
        ConfigError: ``alpha`` (``trainer.alpha``) without ``data.labelled``; several processes.
        PairingError, DataError: see :func:`labelled_set`.
    """
    if data.labelled is None:
        if alpha is not None:
            raise ConfigError("trainer.alpha weights the classification term of labelled images: give "
                              "data.labelled=N (semi-supervised M2) or leave trainer.alpha=null")
        return None
    if world > 1:
        raise ConfigError("data.labelled trains in one process: set trainer.devices=1")
    return labelled_set(vae, data.train, data.labelled, seed, batch_size, alpha)


@evaluates
@torch.no_grad()
def classification_error(vae, split: Split, batch_size: int = 500) -> float:
    """The share of ``split``'s images whose argmax q(c | x) is not their label: the test
    classification error of M2 (Kingma et al. 2014, Table 1), in [0, 1]."""
    wrong = sum(int((vae.encoder.component_probs(xb).argmax(-1) != yb).sum())
                for xb, yb in zip(split.x.split(batch_size), split.y.split(batch_size)))
    return wrong / len(split)
