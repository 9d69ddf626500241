"""Check a built HTML site as a reader without network would see it (``.ci/run`` runs it after the
docs build): no script, style sheet or image loaded from another host, and every link to a page
of the site reaches an existing page and, with ``#anchor``, an element with that id.

    python docs/_ext/check_site.py docs/_build/html

Prints one line per problem and exits with 1 when there are any, 0 otherwise.
"""

import sys
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

LOADED_LINKS = ("stylesheet", "icon", "preload", "modulepreload")
"""``<link rel=...>`` kinds whose ``href`` the browser loads by itself (with every ``<script src>`` and
``<img src>``)."""


class Page(HTMLParser):
    """The ids of one page, the addresses it loads and the links it holds."""

    def __init__(self):
        super().__init__()
        self.ids, self.loaded, self.links = set(), [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if attrs.get("id"):
            self.ids.add(attrs["id"])
        if tag == "a" and attrs.get("name"):
            self.ids.add(attrs["name"])
        loaded = attrs.get("src") if tag in ("script", "img") else None
        if tag == "link" and set((attrs.get("rel") or "").split()) & set(LOADED_LINKS):
            loaded = attrs.get("href")
        if loaded:
            self.loaded.append(loaded)
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs["href"])


def parse(path: Path) -> Page:
    page = Page()
    page.feed(path.read_text(encoding="utf-8", errors="replace"))
    return page


def problems(site: Path) -> list[str]:
    """Every external load and broken local link of the site's ``*.html`` pages."""
    site = site.resolve()
    pages = {path: parse(path) for path in sorted(site.rglob("*.html"))}
    found = []
    for path, page in pages.items():
        where = path.relative_to(site)
        found += [f"{where}: loads {address} from the network" for address in page.loaded
                  if urlsplit(address).scheme in ("http", "https") or address.startswith("//")]
        for link in page.links:
            parts = urlsplit(link)
            if parts.scheme or link.startswith(("//", "mailto:")):
                continue
            target = (path.parent / unquote(parts.path)).resolve() if parts.path else path.resolve()
            if target.is_dir():
                target = target / "index.html"
            if target.suffix != ".html":
                if not target.exists():
                    found.append(f"{where}: link to a missing file {link}")
                continue
            if target not in pages:
                found.append(f"{where}: link to a missing page {link}")
            elif parts.fragment and unquote(parts.fragment) not in pages[target].ids:
                found.append(f"{where}: link to a missing anchor {link}")
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: python docs/_ext/check_site.py BUILT_HTML_DIR (e.g. docs/_build/html)", file=sys.stderr)
        return 2
    found = problems(Path(argv[0]))
    for line in found:
        print(line)
    print(f"{len(found)} problem(s) in {argv[0]}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
