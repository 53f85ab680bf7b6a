from pathlib import Path

import pytest
import yaml

import tests.plugins.toy  # noqa: F401  (registers the toy components)
from lavis.common.config import REPO_ROOT, RunConfig, check_file, load_config
from lavis.common.registry import RegistryError
from lavis.common.schema import ConfigError
from tests.conftest import TOY_CFG


def write(tmp_path: Path, data: dict, name: str = "run.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def toy_run(**run_overrides) -> dict:
    run = {"task": "toy_classification", "custom_imports": ["tests.plugins.toy"]}
    run.update(run_overrides)
    return {"model": {"arch": "toy_classifier"}, "datasets": {"toy_vectors": {}}, "run": run}


def test_layers_later_wins(tmp_path):
    cfg = load_config(TOY_CFG)
    assert cfg.model["hidden"] == 32  # model default (base)
    assert cfg.datasets["toy_vectors"]["dim"] == 8  # dataset default
    assert cfg.datasets["toy_vectors"]["train_noise"] == 0.1  # run file over dataset default
    assert isinstance(cfg.run, RunConfig) and cfg.run.max_steps == 40
    data = toy_run(batch_size_train=3)
    data["model"]["hidden"] = 16
    cfg = load_config(write(tmp_path, data), ["model.hidden=8", "run.batch_size_train=5"])
    assert cfg.model["hidden"] == 8 and cfg.run.batch_size_train == 5
    assert cfg.layers[-2:] == [str(tmp_path / "run.yaml"), "--options"]


def test_model_type_from_options_selects_its_default_file():
    assert load_config(TOY_CFG).model["hidden"] == 32
    cfg = load_config(TOY_CFG, ["model.model_type=wide"])
    assert cfg.model["hidden"] == 64
    assert cfg.layers[0].endswith("toy_classifier_wide.yaml")


def test_misspelt_run_key_names_source_and_closest_key(tmp_path):
    with pytest.raises(ConfigError) as err:
        load_config(TOY_CFG, ["run.bach_size_train=4"])
    message = str(err.value)
    assert message.startswith("--options:")
    assert "'run.bach_size_train'" in message and "did you mean 'run.batch_size_train'" in message

    path = write(tmp_path, toy_run(bach_size_train=4))
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert str(err.value).startswith(f"{path}:") and "run.batch_size_train" in str(err.value)


def test_misspelt_model_key_and_type(tmp_path):
    with pytest.raises(ConfigError, match="'model.hiden'.*did you mean 'model.hidden'"):
        load_config(TOY_CFG, ["model.hiden=3"])
    with pytest.raises(ConfigError, match="no type 'wid'.*did you mean 'wide'"):
        load_config(TOY_CFG, ["model.model_type=wid"])
    with pytest.raises(RegistryError, match="did you mean 'toy_classifier'"):
        load_config(TOY_CFG, ["model.arch=toy_clasifier"])
    with pytest.raises(ConfigError, match="datasets.toy_vectors.dimm.*'datasets.toy_vectors.dim'"):
        load_config(TOY_CFG, ["datasets.toy_vectors.dimm=3"])


def test_wrong_types_are_rejected():
    with pytest.raises(ConfigError, match=r"'run.max_steps' = 'many' has type str, expected int"):
        load_config(TOY_CFG, ["run.max_steps=many"])
    with pytest.raises(ConfigError, match=r"'run.wrapper' = 'fdsp' is not one of.*did you mean 'fsdp'"):
        load_config(TOY_CFG, ["run.wrapper=fdsp"])
    with pytest.raises(ConfigError, match=r"'model.dropout' = \[1\]"):
        load_config(TOY_CFG, ["model.dropout=[1]"])
    cfg = load_config(TOY_CFG, ["run.init_lr=1", "run.max_grad_norm=null"])
    assert cfg.run.init_lr == 1.0 and isinstance(cfg.run.init_lr, float)
    assert cfg.run.max_grad_norm is None


def test_task_keys_live_in_the_run_section():
    assert load_config(TOY_CFG, ["run.report_loss=true"]).task == {"report_loss": True}
    with pytest.raises(ConfigError, match="did you mean 'run.report_loss'"):
        load_config(TOY_CFG, ["run.report_los=true"])


def test_structural_errors(tmp_path):
    with pytest.raises(ConfigError, match="missing required key 'run.task'"):
        load_config(write(tmp_path, {"run": {"seed": 1}}))
    with pytest.raises(ConfigError, match="unknown top-level section 'runn'"):
        load_config(write(tmp_path, {**toy_run(), "runn": {}}))
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "absent.yaml")
    with pytest.raises(ConfigError, match="key=value"):
        load_config(TOY_CFG, ["run.seed"])
    with pytest.raises(ConfigError, match="cannot import 'no_such_plugin'"):
        load_config(write(tmp_path, toy_run(custom_imports=["no_such_plugin"])))


def test_yaml_is_loaded_safely(tmp_path):
    path = tmp_path / "evil.yaml"
    path.write_text("run: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(ConfigError, match="cannot parse YAML"):
        load_config(path)


def test_paths_resolve_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("LAVIS_DATA_ROOT", str(tmp_path / "data"))
    monkeypatch.setenv("LAVIS_CACHE_ROOT", str(tmp_path / "cache"))
    cfg = load_config(TOY_CFG, ["run.output_dir=${data_root:out}", "run.job_id=${cache_root:x}"])
    assert cfg.run.output_dir == str(tmp_path / "data" / "out")
    assert cfg.run.job_id == str(tmp_path / "cache" / "x")


def shipped_yamls() -> list[Path]:
    """Run, model and dataset configs (the demo model's saved folder is checked by test_demo.py)."""
    roots = [REPO_ROOT / "configs", REPO_ROOT / "lavis", REPO_ROOT / "tests" / "configs"]
    demo = REPO_ROOT / "lavis" / "demo"
    return sorted(p for root in roots for p in root.rglob("*.y*ml") if not p.is_relative_to(demo))


@pytest.mark.parametrize("path", shipped_yamls(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_every_shipped_yaml_validates(path):
    check_file(path)


@pytest.mark.parametrize("path", shipped_yamls(), ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_absolute_paths_in_shipped_yaml(path):
    def strings(node):
        if isinstance(node, dict):
            for v in node.values():
                yield from strings(v)
        elif isinstance(node, list):
            for v in node:
                yield from strings(v)
        elif isinstance(node, str):
            yield node

    absolute = [s for s in strings(yaml.safe_load(path.read_text())) if s.startswith(("/", "~"))]
    assert not absolute, f"{path} has absolute paths {absolute}; use ${{data_root:...}} or ${{cache_root:...}}"
