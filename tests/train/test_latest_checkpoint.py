"""latest.safetensors after each epoch: a hard link to model.safetensors when that epoch was
saved as the best (no second write of every weight), its own file when it was not; resuming
from either gives the uninterrupted run's weights."""

import os

import pytest
import torch

from crossrank.train.checkpoint import load_tensors
from crossrank.train.loop import Trainer
from tests.train.test_trainer import _config, _data, _model


def _same_weights(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_latest_links_the_best_weights_and_is_its_own_file_otherwise(tmp_path):
    train, valid = _data(), _data(200, seed=1)
    model = _model()
    out = tmp_path / "run"
    trainer = Trainer(model, _config(epochs=1), out_dir=out)
    trainer.fit(train, valid)
    assert os.path.samefile(out / "latest.safetensors", out / "model.safetensors")
    # the model file replaced later (a rename): the link keeps the old bytes
    before = (out / "latest.safetensors").read_bytes()
    (out / ".model.tmp").write_bytes(b"other")
    os.replace(out / ".model.tmp", out / "model.safetensors")
    assert (out / "latest.safetensors").read_bytes() == before


def test_an_epoch_that_did_not_improve_writes_its_own_latest_and_resumes(tmp_path):
    train, valid = _data(), _data(200, seed=1)
    full = _model()
    # lr 0.5 overfits: the validation metric stops improving before the last epoch
    config = _config(epochs=6, lr=0.5, patience=10)
    result = Trainer(full, config, out_dir=tmp_path / "full").fit(train, valid)
    losses = [h["valid"]["logloss"] for h in result.history]
    worse = [e for e in range(2, 6) if losses[e - 1] >= min(losses[:e - 1])]
    if not worse:
        pytest.fail(f"every epoch improved ({losses}); change the setting meant to overfit")
    stop = worse[0]  # epoch `stop` was not saved as the best: latest is its own file

    part = _model()
    Trainer(part, config, out_dir=tmp_path / "part").fit(train, valid, stop_after_epochs=stop)
    out = tmp_path / "part"
    assert not os.path.samefile(out / "latest.safetensors", out / "model.safetensors")
    assert not _same_weights(load_tensors(out / "latest.safetensors"),
                             load_tensors(out / "model.safetensors"))
    resumed = _model()
    Trainer(resumed, config, out_dir=out).fit(train, valid, resume=True)
    assert _same_weights(resumed.state_dict(), full.state_dict())
    assert (out / "model.safetensors").read_bytes() == \
        (tmp_path / "full" / "model.safetensors").read_bytes()
