"""`examples/own_networks.py` (issue 23, item 5) runs end to end with a tiny budget."""

import importlib.util
import math
from pathlib import Path

import numpy as np

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "own_networks.py"


def test_the_own_networks_example_trains_and_scores(capsys):
    spec = importlib.util.spec_from_file_location("own_networks", EXAMPLE)
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    mean, khat = example.main(["--steps", "20", "--images", "200", "--K", "100"])
    coin_flips = -3 * 32 * 32 * math.log(2)  # log p(x) of every pixel a fair coin: −2129 nats
    assert coin_flips < mean < 0  # 20 steps already code the patches better than coin flips
    assert khat.shape == (20,) and np.isfinite(khat).any()
    assert "test IWAE log p(x) (K=100)" in capsys.readouterr().out
