"""Messages a new user meets: why CUDA is not there, "did you mean" for misspelt settings,
commands and component names, and a stop message on a line of its own after the progress bar."""

import pytest
import torch

from pyro_mvae import runs
from pyro_mvae.cli import main


@pytest.mark.parametrize("cuda,says", [(None, "is a CPU-only build: use device=cpu, or install a CUDA build"),
                                       ("13.0", "this torch (CUDA 13.0) sees no GPU")])
def test_the_cuda_message_names_the_real_cause(monkeypatch, cuda, says):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.version, "cuda", cuda)
    with pytest.raises(ValueError, match="device=cuda, but") as refused:
        runs.resolve_device("cuda")
    assert says in str(refused.value)
    assert ("CUDA build" in str(refused.value)) == (cuda is None)


@pytest.mark.parametrize("args,guess", [(["train", "trainer.epoch=3"], "did you mean 'epochs'?"),
                                        (["train", "prior=mixtur"], "did you mean 'mixture'?"),
                                        (["train", "trainr.lr=0.1"], "did you mean 'trainer'?"),
                                        (["train", "sed=3"], "did you mean 'seed'?"),
                                        (["trian"], "did you mean 'train'?")])
def test_a_misspelt_name_gets_a_did_you_mean(args, guess, capsys):
    assert main(args) == 2
    assert guess in capsys.readouterr().err


def test_a_name_far_from_every_choice_gets_none(capsys):
    assert main(["train", "trainer.zzzz=3"]) == 2
    assert "did you mean" not in capsys.readouterr().err
