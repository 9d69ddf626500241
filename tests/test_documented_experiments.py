"""Every `python experiments/NAME.py ...` command the README and the docs give, the command behind a
published number, names a script that exists and options that script still takes (issue 45: results
must not stand under commands that no longer exist). The options are parsed by the script's own
argparse parser, stopped before any work, all in one interpreter."""

import ast
import re
import subprocess
import sys

from doc_pages import PAGES, ROOT

COMMAND = re.compile(r'python (experiments/\w+\.py)((?:[ \t]+(?:\\\n[ \t]*)?(?:"[^"\n]*"|[^\s`#|)"]+)+)*)')
"""A script and its arguments, up to a comment, the end of a code span, a table cell or the line
(a backslash continues it)."""


FENCED = re.compile(r"(```.*?```)", re.S)


def _one_line_spans(text: str) -> str:
    """``text`` with each inline code span outside the fenced blocks on one line (a span that wraps
    in the Markdown source is one command)."""
    parts = FENCED.split(text)  # odd indices: fenced blocks, kept as they are
    return "".join(part if i % 2 else re.sub(r"`[^`]+`", lambda m: " ".join(m.group(0).split()), part)
                   for i, part in enumerate(parts))


def documented() -> dict[str, set[str]]:
    """``{script: {argument strings}}`` of every documented command, shell variables left as text."""
    found: dict[str, set[str]] = {}
    for page in PAGES:
        for script, args in COMMAND.findall(_one_line_spans(page.read_text())):
            found.setdefault(script, set()).add(" ".join(args.replace("\\\n", " ").split()))
    return found


def parses_arguments(script: str) -> bool:
    """Whether the script reads its command line with argparse."""
    tree = ast.parse((ROOT / script).read_text())
    return any(isinstance(node, ast.Attribute) and node.attr == "ArgumentParser" for node in ast.walk(tree))


CHECK = """
import argparse, runpy, shlex, sys
class Parsed(Exception):
    pass
parse = argparse.ArgumentParser.parse_args
def parse_then_stop(self, *args, **kwargs):
    parse(self, *args, **kwargs)
    raise Parsed
argparse.ArgumentParser.parse_args = parse_then_stop
bad = []
for line in sys.stdin.read().splitlines():
    script, _, args = line.partition(" ")
    sys.argv = [script, *shlex.split(args)]
    sys.path.insert(0, "experiments")
    try:
        runpy.run_path(script, run_name="__main__")
        bad.append(f"{line}: the script ran without parsing its arguments")
    except Parsed:
        pass
    except ModuleNotFoundError as absent:  # an optional peer (pythae): its own extra, not installed here
        print(f"skipped {script}: {absent}", file=sys.stderr)
    except SystemExit as stop:
        bad.append(f"{line}: exit {stop.code}")
print("\\n".join(bad))
"""


def test_every_documented_experiment_command_names_a_script_and_options_it_takes():
    commands = documented()
    assert "experiments/bench_epoch.py" in commands  # the pattern finds the commands
    missing = sorted(script for script in commands if not (ROOT / script).exists())
    assert not missing, f"documented commands of scripts that do not exist: {missing}"
    lines = [f"{script} {args}".strip() for script, arg_sets in sorted(commands.items())
             if parses_arguments(script) for args in sorted(arg_sets)]
    unparsed = sorted(f"{s} {a}" for s, arg_sets in commands.items() if not parses_arguments(s)
                      for a in arg_sets if a)
    assert not unparsed, f"arguments given to scripts that take none: {unparsed}"
    done = subprocess.run([sys.executable, "-c", CHECK], input="\n".join(lines), capture_output=True, text=True,
                          cwd=ROOT, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip() == "", done.stdout
