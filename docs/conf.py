"""Sphinx configuration of the pyro_mvae documentation (``sphinx-build -W -n docs docs/_build``)."""

import pyro_mvae

project = "pyro_mvae"
release = version = pyro_mvae.__version__
extensions = ["myst_parser", "sphinx.ext.autodoc", "sphinx.ext.napoleon", "sphinx.ext.mathjax"]
source_suffix = {".md": "markdown"}
html_theme = "furo"
exclude_patterns = ["_build"]
autodoc_member_order = "bysource"
autodoc_typehints = "description"
nitpicky = True
myst_heading_anchors = 3
