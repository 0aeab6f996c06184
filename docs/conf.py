"""Sphinx configuration of the skmoe documentation.

Build, with warnings as errors (from the project root, with the ``docs`` extra
installed: ``pip install -e ".[docs]"``)::

    python -m sphinx -W --keep-going -b html docs docs/_build/html

The gallery runs every ``examples/plot_*.py`` during the build (the build
takes about 35 s on two idle cores); ``-D plot_gallery=0`` builds the pages without running
them. Without network access (detected by a DNS lookup, or forced with
``SKMOE_DOCS_OFFLINE=1``) the intersphinx inventories of Python, NumPy, SciPy,
scikit-learn and matplotlib are not fetched and links to those projects stay
plain text. ``tests/test_docs.py`` runs the same build, offline and without
the gallery, on a copy of ``docs/`` and ``examples/``.
"""

import importlib.util
import os
import socket
import sys
from datetime import date

# The package is normally installed (editable); fall back to the checkout.
sys.path.insert(0, os.path.abspath(".."))

import skmoe  # noqa: E402

# -- Project -----------------------------------------------------------------

project = "skmoe"
author = "skmoe developers"
copyright = f"2026-{max(date.today().year, 2026)}, {author}"
release = skmoe.__version__
version = ".".join(release.split(".")[:2])

# -- Extensions --------------------------------------------------------------

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.intersphinx",
    "sphinx.ext.mathjax",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

# Markdown pages (benchmarks.md) need MyST; without it they are left out.
if importlib.util.find_spec("myst_parser") is not None:
    extensions.append("myst_parser")
    source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
    myst_enable_extensions = ["dollarmath"]
else:
    source_suffix = {".rst": "restructuredtext"}

templates_path = ["_templates"]
exclude_patterns = ["_build", "README.md", "Thumbs.db", ".DS_Store"]
default_role = "literal"

# Every cross-reference to skmoe must resolve: a misspelt :class:, :meth: or
# :func: is a warning (an error with -W). References to other projects resolve
# through intersphinx when online and stay plain text otherwise, so a missing
# external target never fails the build.
nitpicky = True
nitpick_ignore_regex = [
    (r"py:.*", r"(builtins|python|numpy|scipy|sklearn|matplotlib|joblib|pandas)(\..*)?"),
]

autosummary_generate = True
autodoc_default_options = {"members": True, "inherited-members": True}
autodoc_typehints = "none"

# numpydoc renders the parameter tables; the class template lists the methods.
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
# numpydoc checks every documented skmoe docstring (a warning, an error with -W):
# no undocumented or unknown parameters, no missing docstrings, well-formed
# summaries and sections. Left out as style choices of this project: extended
# summaries, examples and See Also on every method (ES01, EX01, SA01), types
# and descriptions on parameters documented by reference ("As for ...") or
# self-explanatory ones such as X (PR04, PR07), named or undescribed return
# values (RT02, RT03), and summaries that are noun phrases ("Quantiles of ...",
# which SS05 takes for a verb in the third person).
numpydoc_validation_checks = {
    "all", "ES01", "EX01", "SA01", "PR04", "PR07", "RT02", "RT03", "SS05",
}
# Methods inherited from scikit-learn: their docstrings are scikit-learn's.
numpydoc_validation_exclude = {
    r"\.get_metadata_routing$",
    r"\.get_params$",
    r"\.set_params$",
    r"\.set_\w+_request$",
    r"\.score$",
}

# -- Intersphinx -------------------------------------------------------------


def _online(host="docs.python.org"):
    """Whether the intersphinx hosts can be resolved (the build may run offline)."""
    try:
        socket.getaddrinfo(host, 443)
    except OSError:
        return False
    return True


OFFLINE = os.environ.get("SKMOE_DOCS_OFFLINE", "").lower() in {"1", "true", "yes"} or not (
    _online()
)
if OFFLINE:
    intersphinx_mapping = {}
else:
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "matplotlib": ("https://matplotlib.org/stable", None),
    }
intersphinx_timeout = 10

# Labels and glossary terms of scikit-learn's documentation, cited by the
# docstrings of methods inherited from scikit-learn (score, set_*_request,
# get_metadata_routing). Online, intersphinx resolves them; offline they are
# rendered as plain text instead of warning.
SKLEARN_LABELS = {"metadata_routing", "meta-estimator", "r2_score", "accuracy_score"}


def _sklearn_label_as_text(app, env, node, contnode):
    """Render an unresolved scikit-learn label as plain text when offline."""
    if OFFLINE and node.get("reftype") in {"ref", "term"} and (
        node.get("reftarget") in SKLEARN_LABELS
    ):
        return contnode
    return None


# -- Gallery -----------------------------------------------------------------

sphinx_gallery_conf = {
    "doc_module": "skmoe",
    "examples_dirs": "../examples",
    "gallery_dirs": "auto_examples",
    "backreferences_dir": os.path.join("generated", "backreferences"),
    "reference_url": {"skmoe": None},
    "filename_pattern": r"/plot_",
    "matplotlib_animations": False,
    "show_memory": False,
    "remove_config_comments": True,
    # The per-example times are shown on each example's page; the summary page
    # would be written into docs/ itself, among the sources.
    "write_computation_times": False,
}

# -- HTML --------------------------------------------------------------------

if importlib.util.find_spec("pydata_sphinx_theme") is not None:
    html_theme = "pydata_sphinx_theme"
    html_theme_options = {
        "navigation_with_keys": False,
        "show_toc_level": 2,
    }
else:
    html_theme = "alabaster"
html_title = f"skmoe {release}"
html_static_path = []


# -- Setup ---------------------------------------------------------------------


def setup(app):
    """Connect the offline fallback for scikit-learn's labels."""
    app.connect("missing-reference", _sklearn_label_as_text)
    if OFFLINE:
        from sphinx.util import logging

        logging.getLogger(__name__).info(
            "skmoe docs: offline, intersphinx links to Python/NumPy/SciPy/"
            "scikit-learn/matplotlib are disabled"
        )
