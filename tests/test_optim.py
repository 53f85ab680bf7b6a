import math

import pytest
import torch
from torch import nn

from lavis.common.optim import build_optimizer, param_groups
from lavis.common.registry import registry


def make_optimizer(lr_scales=(1.0, 0.1)):
    a, b = nn.Parameter(torch.zeros(2, 2)), nn.Parameter(torch.zeros(2))
    groups = [{"params": [a], "lr_scale": lr_scales[0]}, {"params": [b], "lr_scale": lr_scales[1]}]
    return torch.optim.AdamW(groups, lr=1.0)


def test_cosine_schedule_with_warmup_and_lr_scale():
    opt = make_optimizer()
    sched = registry.get("lr_scheduler", "linear_warmup_cosine_lr")(
        opt, init_lr=1e-4, max_steps=110, min_lr=1e-5, warmup_lr=1e-6, warmup_steps=10
    )
    assert sched.step(0) == pytest.approx(1e-6)
    assert sched.step(5) == pytest.approx(1e-6 + (1e-4 - 1e-6) * 0.5)
    assert sched.step(10) == pytest.approx(1e-4)
    mid = 1e-5 + (1e-4 - 1e-5) * 0.5 * (1 + math.cos(math.pi * 0.5))
    assert sched.step(60) == pytest.approx(mid)
    assert sched.step(110) == pytest.approx(1e-5)
    assert [g["lr"] for g in opt.param_groups] == pytest.approx([1e-5, 1e-6])


def test_linear_and_constant_schedules():
    opt = make_optimizer()
    linear = registry.get("lr_scheduler", "linear_warmup_linear_lr")(opt, init_lr=1.0, max_steps=10, min_lr=0.0)
    assert [linear.step(s) for s in (0, 5, 10)] == pytest.approx([1.0, 0.5, 0.0])
    const = registry.get("lr_scheduler", "constant_lr")(opt, init_lr=0.3, max_steps=10, warmup_steps=2)
    assert [const.step(s) for s in (0, 1, 2, 9)] == pytest.approx([0.0, 0.15, 0.3, 0.3])


def test_default_groups_skip_decay_on_biases_and_norms_and_frozen_params():
    model = nn.Sequential(nn.Linear(3, 3), nn.LayerNorm(3), nn.Linear(3, 2))
    model[2].requires_grad_(False)
    groups = param_groups(model, weight_decay=0.05)
    decay = {id(p) for p in groups[0]["params"]}
    no_decay = {id(p) for p in groups[1]["params"]}
    assert decay == {id(model[0].weight)}
    assert no_decay == {id(model[0].bias), id(model[1].weight), id(model[1].bias)}
    assert groups[0]["weight_decay"] == 0.05 and groups[1]["weight_decay"] == 0.0
    model.requires_grad_(False)
    with pytest.raises(ValueError, match="no trainable parameters"):
        build_optimizer(model, 1e-3, 0.0, (0.9, 0.999))
