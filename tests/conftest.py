import os
from pathlib import Path

import pyro
import pytest
import torch

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
# tests parametrised by ``device``: every CI machine runs "cpu"; "cuda" runs where torch sees a GPU
# (select them with ``-k cuda``); the README gives the run and its numbers
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not torch.cuda.is_available(),
                                                                reason="no CUDA device"))]


@pytest.fixture(autouse=True)
def _seed_and_validation():
    pyro.set_rng_seed(0)
    pyro.enable_validation(True)
    # one torch thread per pytest-xdist worker (the workers share the cores), else up to 2
    torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else min(2, os.cpu_count() or 1))
    yield


@pytest.fixture(params=DEVICES)
def device(request) -> torch.device:
    return torch.device(request.param)


@pytest.fixture
def shared_mnist_root():
    if not (SHARED_DATA / "MNIST" / "raw" / "t10k-images-idx3-ubyte").exists():
        pytest.skip(f"real MNIST files not found under {SHARED_DATA}")
    return SHARED_DATA
