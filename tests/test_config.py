import dataclasses
from pathlib import Path

import pytest

from dos.config.schema import ConfigError, load_config, to_dict
from dos.engine.pretrain import PretrainRunConfig as PretrainConfig

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "dos" / "config" / "pretrain").glob("*.yaml"))


def _leaf_keys(data, prefix=""):
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict):
            yield from _leaf_keys(value, path + ".")
        else:
            yield path


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_shipped_configs_are_valid_and_list_every_hyperparameter(path):
    import yaml

    config = load_config(PretrainConfig, path)
    listed = set(_leaf_keys(yaml.safe_load(path.read_text())))
    assert listed == set(_leaf_keys(to_dict(config)))  # nothing hidden behind a default


def test_paper_values_are_in_the_shipped_configs():
    outdoor = load_config(PretrainConfig, CONFIGS[1])
    indoor = load_config(PretrainConfig, CONFIGS[0])
    assert outdoor.masking.ratio == 0.7 and outdoor.masking.block_size == 1.0
    assert indoor.masking.block_size == 0.4 and indoor.views.grid_size == 0.02
    assert outdoor.distill.num_prototypes == 1024 and outdoor.objective.zipf_alpha == 1.3
    assert outdoor.distill.mode == "observable" and outdoor.objective.target == "softmap"


@pytest.mark.parametrize("override,message", [
    ("masking.ratoi=0.5", "masking.ratoi: unknown key (did you mean masking.ratio?)"),
    ("masking.ratio=1.5", "masking: ratio must be in [0, 1)"),
    ("objective.zipf_alpha=abc", "objective.zipf_alpha: expected a number"),
    ("distill.mode=sonata", "distill: distill.mode must be one of"),
    ("views.crop_ratio=[0.5]", "views.crop_ratio: expected 2 values"),
    ("distill.cross_view=1", "distill.cross_view: expected true or false"),
])
def test_broken_configs_fail_naming_the_file_and_key(override, message):
    with pytest.raises(ConfigError) as error:
        load_config(PretrainConfig, CONFIGS[1], [override])
    assert message in str(error.value) and CONFIGS[1].name in str(error.value)


def test_overrides_apply():
    config = load_config(PretrainConfig, CONFIGS[1], ["objective.zipf_alpha=0", "distill.cross_view=false"])
    assert config.objective.zipf_alpha == 0.0 and config.distill.cross_view is False
    assert dataclasses.replace(config).objective.target == "softmap"
