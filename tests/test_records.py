"""docs/_ext/check_records.py: every number the docs quote from a measurement matches its record
(issue 45, item 7): a wrong number, a missing record or key, a record without its command, and a
bare number in a region that must cite its records are each caught; the repository passes."""

import importlib.util
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("check_records", ROOT / "docs" / "_ext" / "check_records.py")
check_records = importlib.util.module_from_spec(spec)
spec.loader.exec_module(check_records)

RECORD = {"id": "bench", "command": "python experiments/bench.py", "release": "0.2.0", "date": "2026-12-07",
          "machine": "AMD EPYC", "values": {"standard": {"iwae": -89.0234, "epochs": 312, "seconds": 9.06}}}


def _site(tmp_path: Path, page: str, record: dict = RECORD) -> list[str]:
    (tmp_path / "docs" / "records").mkdir(parents=True)
    (tmp_path / "docs" / "records" / "bench.json").write_text(json.dumps(record))
    (tmp_path / "README.md").write_text(page)
    (tmp_path / "CHANGELOG.md").write_text("")
    return check_records.problems_of(tmp_path)


def test_quoted_numbers_that_match_their_record_pass(tmp_path):
    page = ("| standard | −89.02 <!-- rec:bench.standard.iwae --> | 312 <!-- rec:bench.standard.epochs --> "
            "| 9.1 s <!-- rec:bench.standard.seconds --> |\n")
    assert _site(tmp_path, page) == []


def test_a_number_that_differs_from_its_record_fails(tmp_path):
    problems = _site(tmp_path, "IWAE −89.12 <!-- rec:bench.standard.iwae --> nats\n")
    assert len(problems) == 1 and "quotes −89.12 where bench.standard.iwae is -89.0234" in problems[0]


def test_a_key_with_a_dot_is_found(tmp_path):
    record = RECORD | {"values": {"run": {"khat_share_above_0.7": 0.054, "k_sweep": {"10": -23.16}}}}
    page = "0.054 <!-- rec:bench.run.khat_share_above_0.7 --> and −23.16 <!-- rec:bench.run.k_sweep.10 -->\n"
    assert _site(tmp_path, page, record) == []
    assert len(_site(tmp_path / "b", "0.06 <!-- rec:bench.run.khat_share_above_0.7 -->\n", record)) == 1


def test_a_missing_record_or_key_fails(tmp_path):
    problems = _site(tmp_path, "−89.02 <!-- rec:bench.standard.elbo --> and 3.0 <!-- rec:other.x -->\n")
    assert [p.split(": ", 1)[1] for p in problems] == ["no record value bench.standard.elbo", "no record value other.x"]


def test_a_record_without_its_command_fails(tmp_path):
    problems = _site(tmp_path, "", {k: v for k, v in RECORD.items() if k != "command"})
    assert len(problems) == 1 and "lacks command" in problems[0]


def test_a_number_without_a_record_in_a_cited_region_fails(tmp_path):
    page = ("<!-- records: every number -->\n| a | −89.02 <!-- rec:bench.standard.iwae --> |\n"
            "| b | −88.29 |\n<!-- records: end -->\noutside: 1.25\n")
    problems = _site(tmp_path, page)
    assert len(problems) == 1 and "−88.29 has no record marker" in problems[0]


def test_the_repositorys_pages_quote_their_records():
    assert check_records.problems_of(ROOT) == []


MEASURED_CELL = re.compile(r"(?<![\w.])[−-]?\d+\.\d+(?![\w.])")
DATED = re.compile(r"20\d\d-\d\d|[Rr]elease \d|after \d\.\d|\d\.\d\.\d|rec:")
SETTINGS_TABLES = {("docs/guide/training.md", "## The published protocol: `experiment=vampprior_protocol`"),
                   ("docs/guide/evaluation.md", "## Clustering with the mixture prior")}
"""Sections whose tables hold settings or definitions, not measurements."""


def test_every_table_of_measurements_says_its_release_or_date():
    """Issue 45: a table of measured numbers (a decimal in a body cell) sits in a section that says
    the release or the date it was measured with, or cites records."""
    undated = []
    for page in check_records.pages(ROOT):
        text = re.sub(r"```.*?```", "", page.read_text(), flags=re.S)
        for section in re.split(r"\n(?=#{2,3} )", text):
            head = section.splitlines()[0] if section.strip() else ""
            rows = [line for line in section.splitlines() if line.startswith("|") and not line.startswith("|---")]
            measured = any(MEASURED_CELL.search(row) for row in rows[1:])
            where = (str(page.relative_to(ROOT)), head)
            if measured and where not in SETTINGS_TABLES and not DATED.search(section):
                undated.append(where)
    assert not undated, undated
