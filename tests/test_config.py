import pytest
from omegaconf import OmegaConf

from fairdml.config import TrainConfig, compose_config, to_container


def test_default_composes_every_concern():
    cfg = compose_config([])
    assert cfg.data.name == "digits"
    assert cfg.loss.name == "margin" and cfg.loss.miner == "distance_weighted"
    assert cfg.model.backbone == "test_resnet"
    assert dict(cfg.callbacks) == {}  # no mitigation by default
    assert set(cfg.keys()) == set(OmegaConf.structured(TrainConfig).keys())


def test_overrides_and_group_choice():
    cfg = compose_config(["model=resnet18", "trainer.max_epochs=3", "loss=triplet", "experiment=group_balanced"])
    assert cfg.model.backbone == "resnet18"
    assert cfg.trainer.max_epochs == 3
    assert cfg.loss.name == "triplet"
    assert list(cfg.callbacks) == ["group_balanced"]
    assert cfg.experiment == "group_balanced"


def test_misspelled_key_names_key_and_valid_choices():
    with pytest.raises(ValueError) as error:
        compose_config(["trainer.max_epoch=3"])
    message = str(error.value)
    assert "trainer.max_epoch" in message
    assert "max_epochs" in message and "Did you mean 'trainer.max_epochs'" in message


def test_unknown_group_option_lists_available():
    with pytest.raises(ValueError) as error:
        compose_config(["model=resnet19"])
    assert "resnet19" in str(error.value) and "resnet18" in str(error.value)


def test_wrong_type_fails_naming_key():
    with pytest.raises(ValueError, match="trainer.max_epochs"):
        compose_config(["trainer.max_epochs=many"])


def test_plain_container_has_no_omegaconf_objects():
    plain = to_container(compose_config([]))
    assert isinstance(plain, dict) and isinstance(plain["data"]["split"], dict)
    assert type(plain["evaluation"]["ks"]) is list


@pytest.mark.parametrize(("experiment", "attribute"), [("celeba", "Male"), ("celeba_pale_skin", "Pale_Skin")])
def test_celeba_experiments_choose_the_sensitive_attribute(experiment, attribute):
    cfg = compose_config([f"experiment={experiment}"])
    assert cfg.experiment == experiment and cfg.data.name == "celeba"
    assert cfg.data.sensitive_attribute == attribute in cfg.data.options["sensitive_attributes"]
    assert cfg.data.minority_share == 0.1 and cfg.model.backbone == "resnet50"  # the rest of the paper's setting


def test_cub_standard_experiment_orders_classes():
    cfg = compose_config(["experiment=cub_standard"])
    assert cfg.data.class_split == "ordered" and dict(cfg.data.split) == {"train": 0.4, "val": 0.1, "test": 0.5}
    assert compose_config([]).data.class_split == "random"
