"""Data: the data sets a run can name (``data=<name>``) with their loaders, typed options and
registry (here), one module each (:mod:`~pyro_mvae.data.digits`, :mod:`~pyro_mvae.data.idx`,
:mod:`~pyro_mvae.data.binarized_mnist`, :mod:`~pyro_mvae.data.omniglot`,
:mod:`~pyro_mvae.data.arrays`, :mod:`~pyro_mvae.data.folder`, with :mod:`~pyro_mvae.data.files`
and :mod:`~pyro_mvae.data.own`); the splits, batches and the binarisation protocol
(:mod:`~pyro_mvae.data.splits`); the labelled images of semi-supervised runs
(:mod:`~pyro_mvae.data.labelled`).

Each loader takes ``device`` and the keyword options of its ``Config`` and returns a
:class:`~pyro_mvae.data.splits.Dataset` whose ``spec`` loads it again.
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial

from pyro_mvae.config import Registry, Settings, lookup
from pyro_mvae.data.arrays import ArraysConfig, load_arrays
from pyro_mvae.data.binarized_mnist import BinarizedMnistConfig, load_binarized_mnist
from pyro_mvae.data.digits import DigitsConfig, load_digits
from pyro_mvae.data.folder import FolderConfig, load_folder
from pyro_mvae.data.idx import IDX_SETS, MnistConfig, load_idx_set, load_mnist
from pyro_mvae.data.omniglot import OmniglotConfig, load_omniglot
from pyro_mvae.data.splits import Dataset

__all__ = ["DATASETS", "DataSource", "build_dataset", "load_arrays", "load_binarized_mnist", "load_digits",
           "load_folder", "load_idx_set", "load_mnist", "load_omniglot"]


@dataclass(frozen=True)
class DataSource:
    """A registered data set: its loader (``device`` and the keyword options of ``Config``) and
    its typed options."""

    name: str
    load: Callable
    Config: type[Settings]


DATASETS = Registry("data", {s.name: s for s in (
    DataSource("digits", load_digits, DigitsConfig),
    *(DataSource(name, partial(load_idx_set, name), MnistConfig) for name in IDX_SETS),
    DataSource("binarized_mnist", load_binarized_mnist, BinarizedMnistConfig),
    DataSource("omniglot", load_omniglot, OmniglotConfig),
    DataSource("arrays", load_arrays, ArraysConfig),
    DataSource("folder", load_folder, FolderConfig))})
"""Data set name -> :class:`DataSource` (a :class:`~pyro_mvae.config.Registry`).

:meta hide-value:
"""


def build_dataset(data: Mapping, device) -> Dataset:
    """Load the data set ``data["name"]`` with its other options (``batch_size`` is the trainer's).

    Raises:
        ConfigError: for an unregistered name or a bad option.
        DataError: for files that cannot be found, or bad images.
    """
    options = dict(data)
    return lookup(DATASETS, "data", options.pop("name")).load(device=device, **options)
