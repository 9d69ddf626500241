"""Every number the docs quote from a measurement comes from its record (``.ci/run`` runs this).

A record is a JSON file under ``docs/records/``: ``{"id", "command", "release", "date",
"machine", "values": {key: number}}``, written by the script that measured (for example
``experiments/protocol_status.py``), never by hand. A page cites a value by a marker right after
the number it quotes,

    | standard | −91.55 <!-- rec:protocol_status.standard.best_val_elbo --> | ...

(an HTML comment: invisible on GitHub and in the built site). The check fails when a marker names
a record or key that does not exist, when the quoted number is not the record's value rounded to
the decimals quoted, when a record lacks its command, release, date or machine, and, between
``<!-- records: every number -->`` and ``<!-- records: end -->``, when a decimal number has no
marker at all.

    python docs/_ext/check_records.py [ROOT]

Prints one line per problem and exits with 1 when there are any, 0 otherwise.
"""

import json
import re
import sys
from pathlib import Path

MARKER = re.compile(r"(?P<number>[−-]?\d[\d,]*(?:\.\d+)?)(?:\s*[^\s\d<|]{1,5})?\s*<!-- rec:(?P<ref>[\w.-]+) -->")
"""A number, perhaps its unit (``s``, ``%``, ``nats``), and the marker naming its record value."""
NUMBER = re.compile(r"(?<![\w.])[−-]?\d+\.\d+(?![\w.])")
REGION = re.compile(r"<!-- records: every number -->(.*?)<!-- records: end -->", re.S)
REQUIRED = ("id", "command", "release", "date", "machine", "values")


def load_records(root: Path) -> tuple[dict, list[str]]:
    """``{id: record}`` of ``root/docs/records/*.json``, and the problems of records that lack a
    required field."""
    records, problems = {}, []
    for path in sorted((root / "docs" / "records").glob("*.json")):
        record = json.loads(path.read_text())
        missing = [key for key in REQUIRED if not record.get(key)]
        if missing:
            problems.append(f"{path}: the record lacks {', '.join(missing)}")
        records[record.get("id", path.stem)] = record
    return records, problems


def lookup(records: dict, ref: str):
    """The value ``ref`` = ``<record id>.<key>[.<key>...]`` names, or None. A key may hold a dot
    itself (``khat_share_above_0.7``): the longest key present at each level is taken."""
    record_id, _, key = ref.partition(".")
    value = _walk(records.get(record_id, {}).get("values"), key.split(".") if key else [])
    return value if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _walk(value, parts: list[str]):
    if not parts:
        return value
    if not isinstance(value, dict):
        return None
    for n in range(len(parts), 0, -1):
        key = ".".join(parts[:n])
        if key in value:
            return _walk(value[key], parts[n:])
    return None


def quoted(text: str) -> tuple[float, int]:
    """The number a page wrote (Unicode minus, thousands separators) and its decimals."""
    plain = text.replace("−", "-").replace(",", "")
    return float(plain), len(plain.split(".")[1]) if "." in plain else 0


CODE = re.compile(r"```.*?```|`[^`\n]*`", re.S)


def _without_code(text: str) -> str:
    """``text`` with its code blocks and spans blanked (line numbers kept): markers written as
    examples in code are not citations."""
    return CODE.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def check_page(path: Path, records: dict) -> list[str]:
    """The problems of one page's markers and marked regions (code blocks and spans aside)."""
    text, problems = _without_code(path.read_text()), []
    for match in MARKER.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        value = lookup(records, match["ref"])
        if value is None:
            problems.append(f"{path}:{line}: no record value {match['ref']}")
            continue
        number, decimals = quoted(match["number"])
        if round(value, decimals) != number:
            problems.append(f"{path}:{line}: quotes {match['number']} where {match['ref']} is {value!r}")
    for region in REGION.finditer(text):
        bare = MARKER.sub("", region.group(1))
        for number in NUMBER.finditer(bare):
            line = text.count("\n", 0, region.start(1)) + bare.count("\n", 0, number.start()) + 1
            problems.append(f"{path}:~{line}: {number.group(0)} has no record marker")
    return problems


def pages(root: Path) -> list[Path]:
    """The pages checked: the README, the changelog and every Markdown page of the docs."""
    return [root / "README.md", root / "CHANGELOG.md",
            *sorted(p for p in (root / "docs").rglob("*.md") if "_build" not in p.parts)]


def problems_of(root: Path) -> list[str]:
    records, problems = load_records(root)
    for page in pages(root):
        problems += check_page(page, records)
    return problems


def main(argv: list[str]) -> int:
    root = Path(argv[0]) if argv else Path(__file__).resolve().parents[2]
    problems = problems_of(root)
    for problem in problems:
        print(problem)
    print(f"{len(problems)} problem(s) in the quoted records of {root}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
