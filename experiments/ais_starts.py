"""Which start for AIS when the guide is over-confident on some images? Measured on a model whose
log p(x) is known in closed form.

    python experiments/ais_starts.py [--steps 100 500] [--chains 16] [--repeats 4] [--images 8]

The linear-Gaussian VAE of the tests (x = W z + b + ε, W with orthogonal columns) with its guide
set to the exact posterior, except on image 0, where the guide is made over-confident as issue 45
found it on a trained model: its standard deviation 0.005 and its mean 4 posterior standard
deviations away. For each initial distribution of AIS (``guide``, ``prior``, ``both``: the
defensive mixture of the two, half the chains drawn from each) and each T, the error of the AIS estimate against the
exact log p(x) on image 0 and on the others (mean ± s.e. over ``--repeats`` runs), and for
``both`` the per-image difference between its two starts. IWAE with K = 5000 from the same guide
is printed for scale. ``--out FILE`` writes every number as a record the docs cite
(docs/_ext/check_records.py).
"""

import argparse
import sys
from pathlib import Path

import torch
from records import write_record

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from linear_gaussian import (  # noqa: E402
    exact_log_marginal,
    orthogonal_standard_vae_with_exact_guide,
    overconfident_on,
    sample_data,
)
from pyro_mvae.infer.ais import ais_log_likelihood  # noqa: E402
from pyro_mvae.infer.iwae import iwae_log_likelihood  # noqa: E402


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, nargs="+", default=[100, 500])
    parser.add_argument("--chains", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=4)
    parser.add_argument("--images", type=int, default=8)
    parser.add_argument("--out", help="write the numbers as a record (JSON)")
    args = parser.parse_args()
    values = {}
    torch.set_num_threads(1)
    vae = orthogonal_standard_vae_with_exact_guide()
    x = sample_data(vae, args.images)
    exact = torch.as_tensor(exact_log_marginal(vae, x), dtype=torch.float32)  # (N,)
    overconfident_on(vae, x[0])
    iwae = iwae_log_likelihood(vae, x, 5000, compile="false") - exact
    print(f"IWAE-5000 error: image 0 {iwae[0]:+.2f} nats, the others {iwae[1:].mean():+.3f}")
    values["iwae_5000"] = {"image0": iwae[0].item(), "others": iwae[1:].mean().item()}
    print("| start | T | error on image 0 (nats) | error on the others | guide − prior start on image 0 |")
    print("|---|---|---|---|---|")
    for steps in args.steps:
        for init in ("guide", "prior", "both"):
            runs, gaps = [], []
            for r in range(args.repeats):
                torch.manual_seed(r)
                estimate, summary = ais_log_likelihood(vae, x, steps=steps, chains=args.chains, leapfrog=5, init=init)
                runs.append(estimate - exact)
                if init == "both":
                    gaps.append(summary["per_start"]["guide"][0][0] - summary["per_start"]["prior"][0][0])
            err = torch.stack(runs)  # (R, N)
            bad, rest = err[:, 0], err[:, 1:].mean(1)
            gap = f"{torch.stack(gaps).mean():+.2f}" if gaps else "—"
            se = args.repeats ** 0.5
            values[f"{init}_T{steps}"] = {"image0": bad.mean().item(), "image0_se": (bad.std() / se).item(),
                                          "others": rest.mean().item(), "others_se": (rest.std() / se).item()}
            print(f"| {init} | {steps} | {bad.mean():+.2f} ± {bad.std() / args.repeats ** 0.5:.2f} "
                  f"| {rest.mean():+.3f} ± {rest.std() / args.repeats ** 0.5:.3f} | {gap} |")
    if args.out:
        write_record(args.out, values, "one torch thread")


if __name__ == "__main__":
    main()
