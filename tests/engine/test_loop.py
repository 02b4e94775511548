"""The shared training loop: a run killed between any two of its writes resumes to the same history."""

from __future__ import annotations

import pytest
import torch

import dos.engine.loop as loop
from dos.engine.loop import TrainConfig, train_loop


class _Killed(BaseException):
    """Stands for SIGKILL: nothing after it runs."""


def _run(out_dir, steps=6):
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    data = torch.randn(steps, 4, 3)

    def step_fn(step, progress):
        loss = model(data[step]).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss.detach(), {"weight_norm": model.weight.detach().norm()}

    config = TrainConfig(batch_size=4, max_steps=steps, checkpoint_every=1, log_every=1)
    return train_loop(out_dir=out_dir, model=model, optimizer=optimizer, total_steps=steps, config=config,
                      step_fn=step_fn)


@pytest.mark.parametrize("moment", ["right_after_the_checkpoint", "right_before_the_checkpoint"])
def test_a_run_killed_around_a_checkpoint_write_resumes_to_the_uninterrupted_history(tmp_path, monkeypatch, moment):
    reference = tmp_path / "reference"
    _run(reference)
    real_save = loop.save_checkpoint
    calls = {"n": 0}

    def dying_save(path, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            if moment == "right_after_the_checkpoint":
                real_save(path, **kwargs)
            raise _Killed
        real_save(path, **kwargs)

    killed = tmp_path / "killed"
    monkeypatch.setattr(loop, "save_checkpoint", dying_save)
    with pytest.raises(_Killed):
        _run(killed)
    monkeypatch.setattr(loop, "save_checkpoint", real_save)
    _run(killed)
    assert (killed / "history.csv").read_text() == (reference / "history.csv").read_text()
