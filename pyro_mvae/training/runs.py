"""Moved to :mod:`pyro_mvae.runs`; this path imports it, with a DeprecationWarning, until the
next release."""

from pyro_mvae._moved import alias

alias(__name__, "pyro_mvae.runs")
