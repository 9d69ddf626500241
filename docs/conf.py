"""Sphinx configuration of the pyro_mvae documentation.

Build: ``pip install -e ".[docs]" && sphinx-build -W -n --keep-going -b html docs docs/_build/html``.
Nothing is fetched at build time: the inventories of Python, NumPy, PyTorch and Pyro are files
in ``docs/_inventories`` (see its README), and the tutorials (``docs/tutorials/*.py``, jupytext
percent files) are executed by myst-nb; ``PYRO_MVAE_SMOKE_TEST=1`` gives them a small budget.
"""

import sys
from pathlib import Path

import pyro_mvae

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "_ext"))

project = "pyro_mvae"
author = "the pyro_mvae developers"
copyright = "2026, the pyro_mvae developers"
release = version = pyro_mvae.__version__

extensions = [
    "myst_nb",
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "sphinx.ext.mathjax",
    "sphinx-mathjax-offline",  # MathJax served from _static/mathjax: formulas render with no network
    "sphinx.ext.intersphinx",
    "sphinx.ext.viewcode",
    "api_checks",
    "cli_options",
    "registry_tables",  # mapping constants as tables of name and description, not reprs
    "signatures",  # dataclass defaults by name (Config=ObjectiveConfig), not by repr
]
exclude_patterns = ["_build", "conf.py", "_ext", "_inventories", "**/README.md", "Thumbs.db", ".DS_Store"]
nitpicky = True

html_theme = "furo"
html_title = f"pyro_mvae {release}"
html_static_path = ["_static/css"]
html_css_files = ["tables.css"]  # wide tables wrap their cells

myst_enable_extensions = ["dollarmath", "colon_fence", "deflist"]
myst_heading_anchors = 3

nb_custom_formats = {".py": ["jupytext.reads", {"fmt": "py:percent"}]}
nb_execution_mode = "force"
nb_execution_in_temp = True
nb_execution_timeout = 1800
nb_execution_raise_on_error = True
nb_execution_show_tb = True
nb_merge_streams = True

viewcode_follow_imported_members = False  # else a class attribute holding an imported class (MixturePrior.LAYOUT)
# files its module's source under the importer, and every back-link of that source misses its anchor
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
napoleon_google_docstring = True
napoleon_numpy_docstring = False

intersphinx_mapping = {
    name: (url, str(HERE / "_inventories" / f"{name}.inv"))
    for name, url in {
        "python": "https://docs.python.org/3/",
        "numpy": "https://numpy.org/doc/stable/",
        "torch": "https://docs.pytorch.org/docs/stable/",
        "pyro": "https://docs.pyro.ai/en/stable/",
    }.items()
}
