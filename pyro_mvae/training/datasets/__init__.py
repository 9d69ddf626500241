"""Moved to :mod:`pyro_mvae.data`; this path (and its modules) imports it, with a DeprecationWarning, until
the next release."""

from pyro_mvae._moved import alias

alias(__name__, "pyro_mvae.data", ('arrays', 'binarized_mnist', 'digits', 'files', 'folder', 'idx', 'omniglot', 'own'))
