"""``pyro-mvae train [overrides...]``: compose the Hydra config, train, report the IWAE log-likelihood.

Overrides use Hydra's syntax: ``group=option`` swaps a component (``prior=mixture``), and
``key=value`` sets a field (``trainer.epochs=100``, ``data.root=PATH``, ``device=cuda``).
"""

import sys
import time
from pathlib import Path

import torch
from hydra import compose, initialize_config_module
from hydra.errors import HydraException
from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException

from pyro_mvae.registry import DATASETS, build_vae, lookup
from pyro_mvae.storage import write_bytes_atomic
from pyro_mvae.train import TrainerConfig, fit

USAGE = """usage: pyro-mvae train [group=option ...] [key=value ...]

  pyro-mvae train                                   factorized mixture + relaxed guide on digits
  pyro-mvae train prior=mixture guide=gaussian data=mnist trainer.epochs=100
  pyro-mvae train data=mnist data.root=PATH device=cuda

config groups: data (digits, mnist), prior (standard, mixture, factorized_mixture),
guide (gaussian, relaxed_mixture), likelihood (bernoulli, gaussian),
objective (trace, tracegraph), net (mlp), trainer (default)"""


def compose_config(overrides: list[str]):
    """The packaged config with Hydra ``overrides`` applied (a DictConfig)."""
    with initialize_config_module(config_module="pyro_mvae.conf", version_base=None):
        return compose(config_name="config", overrides=overrides)


def resolve_device(name: str) -> torch.device:
    """``cpu``, ``cuda`` or ``auto`` (cuda when available). Raises ValueError otherwise."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu, cuda or auto, got '{name}'")
    if name == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda, but torch sees no CUDA device: use device=cpu, or "
                         "install a CUDA build of torch")
    return torch.device(name)


def train(overrides: list[str]) -> dict:
    """Run ``pyro-mvae train``; returns the report. Raises user errors (ValueError, Hydra errors)."""
    cfg = compose_config(overrides)
    config = OmegaConf.to_container(cfg, resolve=True)
    device = resolve_device(config["device"])
    data_opts = dict(config["data"])
    trainer = TrainerConfig(**config["trainer"], batch_size=data_opts.pop("batch_size"))
    data = lookup(DATASETS, "data", data_opts.pop("name"))(device=device, **data_opts)
    torch.manual_seed(config["seed"])  # parameter initialisation
    vae = build_vae(data.data_dim, config["prior"], config["guide"], config["likelihood"],
                    config["net"]).to(device)
    run_dir = Path(config["run_dir"] or default_run_dir(config))
    report = fit(vae, data, trainer, config["objective"], run_dir, config, seed=config["seed"])
    write_bytes_atomic(run_dir / "config.yaml", OmegaConf.to_yaml(cfg).encode())
    print(summary(report, run_dir))
    return report


def default_run_dir(config: dict) -> str:
    stamp = time.strftime("%Y%m%d-%H%M%S")
    return f"runs/{stamp}_{config['data']['name']}_{config['prior']['name']}_{config['guide']['name']}"


def summary(report: dict, run_dir: Path) -> str:
    return (f"{report['dataset']} test ({report['n_test']} images): "
            f"IWAE log p(x) (K={report['K']}) = {report['test_iwae_ll']:.2f} ± "
            f"{report['test_iwae_ll_se']:.2f} nats, ELBO = {report['test_elbo']:.2f} ± "
            f"{report['test_elbo_se']:.2f} nats; best epoch {report['best_epoch']} of "
            f"{report['epochs_run']}; run directory {run_dir}")


def main(argv=None) -> int:
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or args[0] in ("-h", "--help"):
        print(USAGE)
        return 0 if args else 2
    if args[0] != "train":
        print(f"pyro-mvae: unknown command '{args[0]}'\n{USAGE}", file=sys.stderr)
        return 2
    try:
        train(args[1:])
    except (ValueError, FileExistsError, HydraException, OmegaConfBaseException, TypeError) as err:
        print(f"pyro-mvae: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
