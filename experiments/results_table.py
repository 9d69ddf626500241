"""Print a Markdown table from run reports: python experiments/results_table.py RUN/report.json..."""

import json
import sys
from pathlib import Path


def row(path: Path) -> str:
    report = json.loads(path.read_text())
    name = path.parent.name
    env = report["environment"]
    return (f"| {name} | {report['dataset']} | {report['test_iwae_ll']:.2f} ± {report['test_iwae_ll_se']:.2f} "
            f"(n={report['n_test']}, K={report['K']}) | {report['test_elbo']:.2f} ± {report['test_elbo_se']:.2f} "
            f"| {report['best_epoch'] + 1} / {report['epochs_run']} "
            f"| {report['train_seconds'] / 60:.1f} + {report['eval_seconds'] / 60:.1f} "
            f"| {env['device']}, {env['machine']} |")


def main(paths: list[str]) -> None:
    print("| run | data | test IWAE log p(x) (nats) | test ELBO (nats) | best epoch / epochs "
          "| minutes (train + eval) | device |")
    print("|---|---|---|---|---|---|---|")
    for p in paths:
        print(row(Path(p)))


if __name__ == "__main__":
    main(sys.argv[1:])
