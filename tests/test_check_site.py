"""docs/_ext/check_site.py finds what a reader without network would miss, on a hand-made site."""

import importlib.util
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_site", ROOT / "docs" / "_ext" / "check_site.py")
check_site = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_site)


def test_external_loads_missing_pages_files_and_anchors_are_found(tmp_path):
    (tmp_path / "api").mkdir()
    (tmp_path / "_static").mkdir()
    (tmp_path / "_static" / "mathjax.js").write_text("")
    (tmp_path / "api" / "models.html").write_text('<h1 id="vae">VAE</h1><a name="old-anchor"></a>')
    (tmp_path / "index.html").write_text(
        '<script src="https://cdn.example.org/mathjax.js"></script>'  # loaded from the network
        '<script src="_static/mathjax.js"></script>'  # served by the site
        '<link rel="stylesheet" href="//fonts.example.org/a.css">'  # protocol-relative: the network too
        '<link rel="canonical" href="https://example.org/">'  # not loaded
        '<a href="https://pyro.ai">a page elsewhere: not checked</a>'
        '<a href="api/models.html#vae">ok</a><a href="api/models.html#old-anchor">ok</a><a href="#top">self</a>'
        '<a href="api/models.html#prior">missing anchor</a><a href="api/guides.html">missing page</a>'
        '<a href="_static/missing.png">missing file</a><a id="top" href="api/">folder: its index.html</a>')
    found = check_site.problems(tmp_path)
    assert found == ["index.html: loads https://cdn.example.org/mathjax.js from the network",
                     "index.html: loads //fonts.example.org/a.css from the network",
                     "index.html: link to a missing anchor api/models.html#prior",
                     "index.html: link to a missing page api/guides.html",
                     "index.html: link to a missing file _static/missing.png",
                     "index.html: link to a missing page api/"]
    assert check_site.main([str(tmp_path)]) == 1 and check_site.main([str(tmp_path / "api")]) == 0
