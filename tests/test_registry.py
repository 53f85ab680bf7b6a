import subprocess
import sys

import pytest

from lavis.common.registry import Registry, RegistryError, registry
from tests.conftest import ROOT, subprocess_env


def test_unknown_name_raises_with_suggestion():
    with pytest.raises(RegistryError) as err:
        registry.get("lr_scheduler", "linear_warmup_cosin_lr")
    message = str(err.value)
    assert "lr_scheduler" in message and "'linear_warmup_cosin_lr'" in message
    assert "did you mean 'linear_warmup_cosine_lr'" in message


def test_unknown_kind_raises():
    with pytest.raises(RegistryError, match="did you mean 'model'"):
        registry.get("modle", "x")


def test_registering_the_same_definition_twice_is_harmless():
    reg = Registry()

    def make(module: str) -> type:
        return type("Net", (), {"__module__": module, "__qualname__": "Net"})

    first = make("lavis.models.net")
    reg.register("model", "net")(first)
    reg.register("model", "net")(make("lavis.models.net"))  # the module ran a second time
    assert reg.get("model", "net").__qualname__ == "Net"
    with pytest.raises(RegistryError, match="already registered"):
        reg.register("model", "net")(make("other.module"))


def test_importing_modules_twice_does_not_raise():
    code = (
        "import importlib, runpy, lavis, lavis.common.optim as m\n"
        "importlib.reload(m)\n"
        "runpy.run_module('lavis.runners.step_runner', run_name='__main__', alter_sys=True)\n"
        "import lavis\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_lists_components_by_kind():
    proc = subprocess.run([sys.executable, "-m", "lavis", "list"], cwd=ROOT, env=subprocess_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    headers = [line.split(" (")[0] for line in lines if not line.startswith(" ")]
    assert headers == list(registry.kinds())
    runner_at = lines.index(next(line for line in lines if line.startswith("runner (")))
    assert lines[runner_at + 1].split()[0] == "runner_step"
    assert any(line.split()[0] == "linear_warmup_cosine_lr" for line in lines if line.startswith("  "))
