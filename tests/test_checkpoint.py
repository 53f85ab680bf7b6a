import pickle
import random
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

from lavis.common import checkpoint as ckpt_io
from lavis.datasets.synthetic import generate
from tests.conftest import ROOT, subprocess_env


class Unpicklable:
    def __reduce__(self):
        raise pickle.PicklingError("no")


class Arbitrary:
    pass


def test_atomic_save_keeps_the_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "ckpt.pth"
    ckpt_io.atomic_save({"format": ckpt_io.FORMAT, "x": torch.ones(2)}, path)
    with pytest.raises(pickle.PicklingError):
        ckpt_io.atomic_save({"format": ckpt_io.FORMAT, "x": Unpicklable()}, path)
    assert torch.equal(ckpt_io.load_checkpoint(path)["x"], torch.ones(2))
    assert [p.name for p in tmp_path.iterdir()] == ["ckpt.pth"]  # no temporary left behind


def test_loading_never_unpickles_arbitrary_objects(tmp_path):
    path = tmp_path / "evil.pth"
    torch.save({"format": ckpt_io.FORMAT, "payload": Arbitrary()}, path)
    with pytest.raises(ckpt_io.CheckpointError, match="cannot read checkpoint"):
        ckpt_io.load_checkpoint(path)
    torch.save({"format": "other"}, tmp_path / "other.pth")
    with pytest.raises(ckpt_io.CheckpointError, match="is not a lavis-checkpoint"):
        ckpt_io.load_checkpoint(tmp_path / "other.pth")
    with pytest.raises(ckpt_io.CheckpointError, match="does not exist"):
        ckpt_io.load_checkpoint(tmp_path / "absent.pth")
    (tmp_path / "cut.pth").write_bytes((tmp_path / "other.pth").read_bytes()[:20])
    with pytest.raises(ckpt_io.CheckpointError, match="cannot read"):
        ckpt_io.load_checkpoint(tmp_path / "cut.pth")


def frozen_net():
    net = nn.Sequential(nn.Linear(2, 3), nn.BatchNorm1d(3), nn.Linear(3, 1))
    net[0].requires_grad_(False)
    return net


def test_trainable_state_with_manifest_loads_strictly():
    src, dst = frozen_net(), frozen_net()
    state = ckpt_io.trainable_state(src, src.state_dict())
    manifest = ckpt_io.frozen_manifest(src)
    assert set(manifest) == {"0.weight", "0.bias"} and manifest["0.weight"] == [3, 2]
    assert "0.weight" not in state and "1.running_mean" in state and "2.weight" in state
    ckpt_io.load_trainable(dst, {"model": state, "frozen_manifest": manifest}, "ckpt")
    assert torch.equal(dst[2].weight, src[2].weight)

    partial = {k: v for k, v in state.items() if k != "2.bias"}
    with pytest.raises(ckpt_io.CheckpointError, match="missing: 2.bias"):
        ckpt_io.check_fits(dst, partial, manifest, "ckpt")
    with pytest.raises(ckpt_io.CheckpointError, match="unexpected: extra"):
        ckpt_io.check_fits(dst, {**state, "extra": torch.zeros(1)}, manifest, "ckpt")
    with pytest.raises(ckpt_io.CheckpointError, match="shape differs: 2.weight"):
        ckpt_io.check_fits(dst, {**state, "2.weight": torch.zeros(5, 5)}, manifest, "ckpt")
    dst[0].requires_grad_(True)
    with pytest.raises(ckpt_io.CheckpointError, match="frozen but trainable"):
        ckpt_io.check_fits(dst, state, manifest, "ckpt")


def test_rng_states_round_trip_through_a_weights_only_file(tmp_path):
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    ckpt_io.atomic_save({"format": ckpt_io.FORMAT, "rng": ckpt_io.capture_rng()}, tmp_path / "r.pth")
    expected = (random.random(), np.random.rand(), torch.rand(1).item())
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    ckpt_io.restore_rng(ckpt_io.load_checkpoint(tmp_path / "r.pth")["rng"])
    assert (random.random(), np.random.rand(), torch.rand(1).item()) == expected


def test_weights_that_do_not_fit_stop_train_py_with_one_line_and_exit_2(tmp_path):
    """The shapes config with ``random_init``: a vision file with a tensor of another shape is still refused."""
    generate(tmp_path / "data" / "shapes", num_videos=3, seed=1, size=64, fps=8, seconds=1.0)
    shutil.copytree(ROOT / "lavis" / "demo" / "vision", tmp_path / "vision")
    state = load_file(tmp_path / "vision" / "model.safetensors")
    state["post_layernorm.weight"] = state["post_layernorm.weight"][:64]
    save_file(state, tmp_path / "vision" / "model.safetensors")
    proc = subprocess.run(
        [sys.executable, str(ROOT / "train.py"), "--cfg-path",
         str(ROOT / "lavis/projects/shapes/caption_shapes_ft.yaml"), "--options",
         f"model.vision_weights={tmp_path / 'vision'}", f"run.output_dir={tmp_path / 'out'}",
         "run.max_steps=1", "run.batch_size_train=1", "run.num_workers=0", "run.valid_splits=[]", "run.test_splits=[]"],
        cwd=ROOT, env={**subprocess_env(), "LAVIS_DATA_ROOT": str(tmp_path / "data")}, capture_output=True, text=True,
        timeout=300)
    errors = [line for line in proc.stderr.splitlines() if " ERROR " in line]
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    assert len(errors) == 1 and "vision.model.post_layernorm.weight: [64] in the file, [128] in the model" in errors[0]
