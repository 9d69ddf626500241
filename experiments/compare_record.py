"""A ``pyro-mvae compare`` table as a record the docs cite (docs/records/, checked in CI).

    python experiments/compare_record.py RUN_OR_SWEEP_DIR ... [--baseline OVERRIDES] [--limit N]
                                         --out docs/records/NAME.json

The numbers of ``pyro-mvae compare`` (its CSV: unrounded) for every row, under a key made of the
row's label (``route=standard_gaussian`` -> ``route_standard_gaussian``): IWAE and its s.e. over
images, the paired Δ against the baseline and its s.e., ELBO, active units, the share of images
with k̂ > 0.7, the best epoch (from 0), the epochs run and the median seconds per epoch, in nats
and seconds. The record's machine is this one's; each run's ``environment.json`` holds the
machine and threads it trained with. Prints the table for the docs, every number with its marker.
"""

import argparse
import csv
import io
import re
import shlex
import sys

from records import minus, region, write_record

from pyro_mvae.evaluation.compare import compare_table

KEYS = ("iwae", "iwae_se_images", "delta", "delta_se", "elbo", "active_units", "latent_dim", "khat_share",
        "best_epoch", "epochs", "epoch_seconds")


def row_key(label: str) -> str:
    """A record key of a row label: its runs of characters other than letters, digits and ``_``
    become one ``_`` (``route=standard_gaussian seed=1`` -> ``route_standard_gaussian_seed_1``)."""
    return re.sub(r"\W+", "_", label).strip("_")


def values_of(paths: list[str], baseline: str | None, limit: int | None) -> dict:
    """``{row key: {"label", KEYS...}}`` of the compare table (numbers as floats; an empty cell is left out)."""
    table = csv.DictReader(io.StringIO(compare_table(paths, baseline, "csv", limit)))
    return {row_key(row["label"]): {"label": row["label"]}
            | {key: float(row[key]) for key in KEYS if row.get(key) not in (None, "")} for row in table}


def table(record: dict) -> str:
    """The docs' table of a compare record as a records region, every number followed by its marker."""
    lines = ["| row | IWAE log p(x) (nats) | paired Δ (nats) | ELBO (nats) | `k̂ > 0.7` (share) | best epoch from 0 "
             "| epochs run | s per epoch |", "|" + "---|" * 8]
    for key, v in record["values"].items():
        def cell(name, spec):
            ref = f"<!-- rec:{record['id']}.{key}.{name} -->"
            return f"{minus(v[name], spec)} {ref}" if name in v else "—"
        delta = f"{cell('delta', '+.2f')} ± {cell('delta_se', '.2f')}" if "delta" in v else "—"
        lines.append(f"| {v['label']} | {cell('iwae', '.2f')} ± {cell('iwae_se_images', '.2f')} | {delta} "
                     f"| {cell('elbo', '.2f')} | {cell('khat_share', '.3f')} | {cell('best_epoch', '.0f')} "
                     f"| {cell('epochs', '.0f')} | {cell('epoch_seconds', '.1f')} |")
    return region(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="+", help="run or sweep directories, as pyro-mvae compare takes them")
    parser.add_argument("--baseline", help="the row the paired Δ is against (space-separated key=value)")
    parser.add_argument("--limit", type=int, help="compare on the first N scored images")
    parser.add_argument("--out", required=True, help="docs/records/NAME.json")
    args = parser.parse_args()
    record = write_record(args.out, values_of(args.paths, args.baseline, args.limit),
                          "compare run here; each run's environment.json gives the machine and threads it trained with",
                          "python " + shlex.join(sys.argv))
    print(table(record))


if __name__ == "__main__":
    main()
