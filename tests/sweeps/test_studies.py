"""The documented studies are Hydra experiment configs with their grids (issue 22): each plans to
its routes, every job checks out on any data set, one runs end to end on a user's array file,
and nothing of our own schedules trainings."""

import ast
import json
from pathlib import Path

import numpy as np
import pytest
from sklearn.datasets import load_digits

from doc_pages import blocks
from pyro_mvae.cli import main
from pyro_mvae.compose import compose_config
from pyro_mvae.sweeps.grid import check_jobs, plan

ROOT = Path(__file__).resolve().parents[2]
STUDIES = {
    "core_table": ["standard_gaussian", "fm3_gaussian", "flow_gaussian", "mix10_marginal", "vamp_gaussian"],
    "more_priors": ["vamp_gaussian", "flow_gaussian", "mix10_flow"],
    "protocol_table": ["standard_gaussian", "vamp_gaussian", "fm3_gaussian", "fm5_gaussian", "mix10_marginal",
                       "flow_gaussian"],
    "gradient_routes": ["mix10_concrete", "mix10_straight_through", "mix10_score", "mix10_score_average",
                        "mix10_score_neural", "mix10_enum"],
    "m2": ["mix10_enum", "mix10_concrete", "mix10_straight_through", "mix10_gumbel_rao", "mix10_marginal"],
    "route_study": [p.stem for p in sorted((ROOT / "pyro_mvae/conf/route").glob("*.yaml"))
                    if p.stem not in ("mix10_gaussian", "mix10_flow", "mix10_concrete", "mix10_score",
                                      "mix10_score_average", "mix10_score_neural", "vamp_gaussian", "flow_gaussian")],
}


@pytest.mark.parametrize("study", STUDIES)
def test_each_study_plans_its_routes_and_every_job_checks_out(study):
    sweep = plan([f"experiment={study}", "data=digits"])
    assert sorted(sweep.grid["route"].split(",")) == sorted(STUDIES[study])
    assert sorted(job[0] for job in sweep.jobs) == sorted(f"route={r}" for r in STUDIES[study])
    assert check_jobs(sweep) == []  # every route is a valid pairing: nothing refused or skipped
    assert plan([f"experiment={study}", "data=digits"]).hydra["sweep"]["dir"] == f"multirun/{study}_${{data.name}}"


ABLATIONS = {"protocol": {}, "plain_net": {"net.name": "mlp"},
             "warmup_10": {"trainer.beta_start": 0.1, "trainer.warmup_epochs": 9},
             "lr_1e3": {"trainer.lr": 0.001}, "adam": {"trainer.optimizer": "adam"}}
"""The protocol ablation's variants and what each changes of the published protocol."""


def _flat(tree: dict, prefix: str = "") -> dict:
    return {k: v for key, value in tree.items()
            for k, v in (_flat(value, f"{prefix}{key}.").items() if isinstance(value, dict)
                         else [(f"{prefix}{key}", value)])}


def test_the_protocol_ablation_changes_one_part_of_the_protocol_per_job():
    """experiment=protocol_ablation: the standard VAE at the published protocol, one job per
    variant, each differing from the protocol in exactly its own settings (β = (epoch + 1)/10 for
    warmup_10), every job checking out, the validation IWAE curve asked of all."""
    sweep = plan(["experiment=protocol_ablation", "data=digits"])
    assert sorted(sweep.grid["ablation"].split(",")) == sorted(ABLATIONS) and check_jobs(sweep) == []
    protocol = _flat(compose_config(["experiment=protocol_ablation", "ablation=protocol"]))
    assert (protocol["prior.name"], protocol["net.name"], protocol["trainer.optimizer"]) == \
        ("standard", "gated_mlp", "adam_normgrad")
    assert (protocol["trainer.val_iwae_samples"], protocol["trainer.val_iwae_every"]) == (1000, 50)
    for name, changes in ABLATIONS.items():
        variant = _flat(compose_config(["experiment=protocol_ablation", f"ablation={name}"]))
        assert {k: v for k, v in variant.items() if protocol.get(k) != v} == changes, name


def test_the_worked_search_plans_its_space_and_checks_out():
    sweep = plan(["experiment=search_digits"])
    assert sweep.search and sweep.hydra["sweeper"]["direction"] == "maximize"
    assert set(sweep.grid) == {"trainer.lr", "trainer.warmup_epochs", "trainer.tau_end", "prior.components"}
    corner = ["trainer.lr=0.0001", "trainer.warmup_epochs=0", "trainer.tau_end=0.1", "prior.components=3"]
    assert corner + ["experiment=search_digits"] in sweep.jobs
    assert len(sweep.jobs) == 1 + 1 + 3 + 1 + 2 and check_jobs(sweep) == []  # each end, each choice


def test_the_documented_slurm_example_composes_with_hydras_submitit_plugin():
    block = next(b for _, b in blocks("text") if "submitit_slurm" in b)
    args = block.replace("\\\n", " ").split()[3:]  # after `pyro-mvae train -m`
    sweep = plan(args)
    launcher = sweep.hydra["launcher"]
    assert launcher["_target_"].endswith("SlurmLauncher") and len(sweep.jobs) == len(STUDIES["route_study"])
    assert (launcher["partition"], launcher["gpus_per_node"], launcher["timeout_min"]) == ("gpu", 1, 240)


def test_a_study_runs_on_a_users_array_file(tmp_path, capsys):
    images = tmp_path / "images.npy"
    np.save(images, (load_digits().images[:400] * 255 / 16).round().astype(np.uint8))  # (400, 8, 8)
    sweep_dir = tmp_path / "routes"
    assert main(["train", "-m", "experiment=route_study", "route=standard_gaussian,fm3_gaussian", "data=arrays",
                 f"data.path={images}", "trainer.epochs=1", "trainer.eval_samples=10", "trainer.eval_limit=20",
                 "trainer.figures=false", "net.hidden=[16]", "net.latent_dim=4", f"hydra.sweep.dir={sweep_dir}"]) == 0
    assert {json.loads(p.read_text())["dataset"] for p in sweep_dir.glob("*/report.json")} == {"arrays"}
    capsys.readouterr()
    assert main(["compare", str(sweep_dir), "--baseline", "route=standard_gaussian"]) == 0
    out = capsys.readouterr().out
    assert "| route=fm3_gaussian | 0 |" in out and "Scored on arrays, the first 20 of 40 test images, K = 10" in out
    record_of_compare(sweep_dir, out, tmp_path)
    status_record(sweep_dir, tmp_path)


def _module(path: Path):
    """The Python file ``path`` loaded as a module."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _script(name: str):
    """experiments/<name>.py as a module, its folder on the path as when it runs."""
    import sys

    sys.path.insert(0, str(ROOT / "experiments"))
    return _module(ROOT / "experiments" / f"{name}.py")


def _records_check(site: Path) -> list[str]:
    """docs/_ext/check_records.py's problems of a site folder."""
    return _module(ROOT / "docs" / "_ext" / "check_records.py").problems_of(site)


def status_record(sweep_dir: Path, tmp_path: Path) -> None:
    """experiments/protocol_status.py on the sweep's two finished runs: their numbers from the run
    directories, the paired Δ that compare gives, and a table the records check passes."""
    status_script = _script("protocol_status")
    runs = {"standard": sweep_dir / "route=standard_gaussian", "fm3": sweep_dir / "route=fm3_gaussian"}
    status = {name: status_script.run_status(path) for name, path in runs.items()}
    status_script.paired_deltas(runs, status)
    report = json.loads((runs["fm3"] / "report.json").read_text())
    assert status["fm3"]["finished"] == 1 and status["fm3"]["test_iwae"] == report["test_iwae_ll"]
    fm3 = _script("compare_record").values_of([str(sweep_dir)], "route=standard_gaussian", None)["route_fm3_gaussian"]
    assert abs(status["fm3"]["paired_delta"] - fm3["delta"]) < 1e-9 and "paired_delta" not in status["standard"]
    site = tmp_path / "status_site"
    record = status_script.write_record(str(site / "docs" / "records" / "status.json"), status, "a test", "python x")
    (site / "README.md").write_text(status_script.table(record, status_script.LABELS) + "\n")
    (site / "CHANGELOG.md").write_text("")
    assert _records_check(site) == []


def record_of_compare(sweep_dir: Path, printed: str, tmp_path: Path) -> None:
    """experiments/compare_record.py on the same sweep: a record whose rows hold compare's numbers
    (the printed table's, to its two decimals), and whose table the records check passes."""
    compare_record = _script("compare_record")
    values = compare_record.values_of([str(sweep_dir)], "route=standard_gaussian", None)
    fm3 = values["route_fm3_gaussian"]
    printed_row = next(line for line in printed.splitlines() if line.startswith("| route=fm3_gaussian |"))
    iwae, delta = printed_row.split(" | ")[2], printed_row.split(" | ")[4]
    assert iwae == f"{fm3['iwae']:.2f} ± {fm3['iwae_se_images']:.2f}"
    assert delta == f"{fm3['delta']:+.2f} ± {fm3['delta_se']:.2f}" and "delta" not in values["route_standard_gaussian"]
    out = tmp_path / "site" / "docs" / "records" / "routes.json"
    record = compare_record.write_record(str(out), values, "a test", "python experiments/compare_record.py")
    (tmp_path / "site" / "README.md").write_text(compare_record.table(record) + "\n")
    (tmp_path / "site" / "CHANGELOG.md").write_text("")
    assert _records_check(tmp_path / "site") == []


RUNNERS = {"subprocess", "concurrent.futures", "multiprocessing", "torch.multiprocessing"}
"""Modules that start processes or thread pools."""
ALLOWED = {"pyro_mvae/tracking/provenance.py": "git rev-parse for the run's provenance",
           "pyro_mvae/training/distributed.py": "DDP's spawn, several processes for one model",
           "experiments/bench_threads.py": "times processes side by side, the thing it measures",
           "experiments/bench_sweep.py": "times the runs started by hand against Hydra's launcher",
           "experiments/bench_iwae.py": "measures peak memory in a child process",
           "experiments/bench_ais.py": "measures peak memory in a child process",
           "experiments/bench_scaling.py": "times DistributedDataParallel on several processes",
           "experiments/bench_epoch.py": "runs the NumPyro twin in a process with its own XLA threads",
           "experiments/records.py": "git rev-parse for a record's release",
           "experiments/first_commands.py": "times the documented commands, each its own process"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    return names | {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}


def test_nothing_of_our_own_schedules_trainings():
    files = [*ROOT.glob("pyro_mvae/**/*.py"), *ROOT.glob("experiments/*.py")]
    runners = {str(p.relative_to(ROOT)) for p in files if _imports(p) & RUNNERS}
    assert runners <= set(ALLOWED), sorted(runners - set(ALLOWED))
    assert not list(ROOT.glob("experiments/*.sh"))
