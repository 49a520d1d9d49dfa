"""TimeBudgetLRDecay: the learning rate follows the share of trainer.max_time spent."""

from types import SimpleNamespace

import pytest
import torch
from lightning.pytorch.callbacks import Timer

from dpdeblur.errors import ConfigError
from dpdeblur.training.callbacks import TimeBudgetLRDecay, budget_lr_factor


def test_factor_is_flat_then_linear_to_the_final_factor():
    assert budget_lr_factor(0.0, 0.75, 0.05) == 1.0
    assert budget_lr_factor(0.75, 0.75, 0.05) == 1.0
    assert budget_lr_factor(0.875, 0.75, 0.05) == pytest.approx(0.525)
    assert budget_lr_factor(1.0, 0.75, 0.05) == pytest.approx(0.05)
    assert budget_lr_factor(1.3, 0.75, 0.05) == pytest.approx(0.05)  # past the budget


class FakeTimer(Timer):
    """A Timer whose clock the test sets."""

    def __init__(self, elapsed: float, total: float):
        super().__init__(duration="00:00:01:40")
        self.elapsed, self.total = elapsed, total

    def time_elapsed(self, stage="train"):
        return self.elapsed

    def time_remaining(self, stage="train"):
        return self.total - self.elapsed


def test_learning_rates_follow_the_budget_and_survive_a_resume():
    weights = torch.nn.Parameter(torch.zeros(2))
    optimizer = torch.optim.AdamW([{"params": [weights], "lr": 2e-3}, {"params": [], "lr": 1e-3}])
    timer = FakeTimer(elapsed=0.0, total=100.0)
    trainer = SimpleNamespace(callbacks=[timer], optimizers=[optimizer])
    decay = TimeBudgetLRDecay(start_fraction=0.5, final_factor=0.1)
    decay.on_train_start(trainer, None)
    for elapsed, expected in ((10.0, 1.0), (75.0, 0.55), (100.0, 0.1)):
        timer.elapsed = elapsed
        decay.on_train_batch_start(trainer, None, None, 0)
        lrs = [group["lr"] for group in optimizer.param_groups]
        assert lrs == pytest.approx([2e-3 * expected, 1e-3 * expected])
    # A resumed run restores the base rates instead of reading the decayed ones.
    resumed = TimeBudgetLRDecay(start_fraction=0.5, final_factor=0.1)
    resumed.load_state_dict(decay.state_dict())
    resumed.on_train_start(trainer, None)
    timer.elapsed = 0.0
    resumed.on_train_batch_start(trainer, None, None, 0)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(2e-3)


def test_without_a_time_budget_it_says_what_to_set():
    trainer = SimpleNamespace(callbacks=[], optimizers=[])
    with pytest.raises(ConfigError, match="max_time"):
        TimeBudgetLRDecay().on_train_start(trainer, None)
    with pytest.raises(ConfigError, match="start_fraction"):
        TimeBudgetLRDecay(start_fraction=1.0)
