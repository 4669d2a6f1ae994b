from collections import Counter

import numpy as np
import pytest

from fairdml.config import compose_config
from fairdml.data.datamodule import DMLDataModule
from fairdml.data.digits import ComposedDigits
from fairdml.data.registry import create_dataset
from fairdml.data.samplers import ClassBalancedBatchSampler
from fairdml.data.splits import class_disjoint_split, impose_minority_share, minority_count


@pytest.fixture(scope="module")
def digits():
    return ComposedDigits(samples_per_class=10, num_classes=40, seed=3)


def test_digits_attribute_is_per_class_and_changes_appearance(digits):
    assert len(digits) == 400 and digits.attribute_names == ("style",)
    for c in np.unique(digits.labels):
        assert len(set(digits.attributes[digits.labels == c, 0])) == 1
    assert digits.attributes[:, 0].sum() == 200  # half of the classes are minority
    majority = digits.images[digits.attributes[:, 0] == 0].mean(axis=(0, 1, 2))
    minority = digits.images[digits.attributes[:, 0] == 1].mean(axis=(0, 1, 2))
    assert np.abs(majority - minority).max() > 50  # a visible change in colour statistics
    assert digits.load_image(0).size == (32, 32)


def test_unknown_dataset_and_option_errors():
    with pytest.raises(KeyError, match="registered datasets"):
        create_dataset("imagenet")
    with pytest.raises(TypeError, match="valid options"):
        create_dataset("digits", samples_per_klass=3)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_split_is_class_disjoint_and_covers_everything(digits, seed):
    groups = digits.attributes[:, 0]
    splits = class_disjoint_split(digits.labels, {"train": 0.6, "val": 0.1, "test": 0.3}, seed, groups=groups)
    classes = {name: set(digits.labels[idx]) for name, idx in splits.items()}
    assert not classes["train"] & classes["val"] and not classes["train"] & classes["test"]
    assert not classes["val"] & classes["test"]
    assert sorted(np.concatenate(list(splits.values()))) == list(range(len(digits)))
    # stratified: each split has as many minority as majority classes (20 + 20 classes in total)
    for idx in splits.values():
        per_group = Counter(groups[idx][np.unique(digits.labels[idx], return_index=True)[1]])
        assert per_group[0] == per_group[1]


@pytest.mark.parametrize("share", [0.05, 0.1, 0.25])
@pytest.mark.parametrize("by", ["samples", "classes"])
def test_minority_share_exact_counts(digits, share, by):
    groups = digits.attributes[:, 0]
    indices = np.arange(len(digits))
    kept = impose_minority_share(indices, groups, 1, share, seed=0, labels=digits.labels, by=by)
    n_majority = int((groups[kept] == 0).sum())
    assert n_majority == 200  # the majority is never touched
    assert int((groups[kept] == 1).sum()) == minority_count(200, share) == round(share * 200 / (1 - share))
    if by == "classes":  # whole identities kept: at most one minority class is partial
        counts = Counter(digits.labels[kept][groups[kept] == 1])
        assert sum(1 for n in counts.values() if n < 10) <= 1


def _sampler(labels, **kw):
    return ClassBalancedBatchSampler(labels, batch_size=16, samples_per_class=4, seed=0, **kw)


def test_sampler_gives_m_per_class_and_covers_every_sample(digits):
    sampler = _sampler(digits.labels)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 40 * 3 // 4  # 40 classes × ceil(10 / 4) chunks, 4 a batch
    for batch in batches:
        assert len(batch) == 16
        assert sorted(Counter(digits.labels[batch]).values()) == [4, 4, 4, 4]
    assert set(np.concatenate(batches)) == set(range(400))  # full coverage in one epoch


def test_sampler_shards_by_rank_and_reshuffles_by_epoch(digits):
    # m = 5 divides the 10 samples of each class, so no chunk is filled by re-drawing: shards are disjoint.
    ranks = [ClassBalancedBatchSampler(digits.labels, 20, 5, num_replicas=3, rank=r) for r in range(3)]
    shards = [list(s) for s in ranks]
    assert len({len(s) for s in shards}) == 1  # equal batch counts on every rank (DDP gathers)
    flat = [set(np.concatenate(s)) for s in shards]
    assert not (flat[0] & flat[1]) and not (flat[1] & flat[2])
    first_epoch = list(_sampler(digits.labels))
    resampled = _sampler(digits.labels)
    resampled.set_epoch(1)
    assert list(resampled) != first_epoch


def test_sampler_state_resumes_mid_epoch(digits):
    sampler = _sampler(digits.labels)
    sampler.set_epoch(2)
    iterator = iter(sampler)
    seen = [next(iterator) for _ in range(5)]
    state = sampler.state_dict()
    restored = _sampler(digits.labels)
    restored.load_state_dict(state)
    rest = list(restored)
    full = _sampler(digits.labels)
    full.set_epoch(2)
    assert seen + rest == list(full)


def test_group_balanced_sampler_oversamples_minority(digits):
    groups = digits.attributes[:, 0]
    indices = impose_minority_share(np.arange(400), groups, 1, 0.1, seed=0)
    labels, sub_groups = digits.labels[indices], groups[indices]
    sampler = ClassBalancedBatchSampler(labels, 16, 4, groups=sub_groups, group_balanced=True)
    for batch in sampler:
        assert Counter(sub_groups[batch]) == {0: 8, 1: 8}
        assert sorted(Counter(labels[batch]).values()) == [4, 4, 4, 4]


def test_datamodule_applies_protocol_and_summarises():
    cfg = compose_config(["data.options.num_classes=40", "data.options.samples_per_class=10"])
    datamodule = DMLDataModule(cfg.data, seed=0)
    datamodule.setup()
    summary = datamodule.summary()
    train = summary["splits"]["train"]
    assert train["groups"]["minority"]["n"] == minority_count(train["groups"]["majority"]["n"], 0.1)
    assert summary["splits"]["test"]["groups"]["minority"]["n"] == summary["splits"]["test"]["groups"]["majority"]["n"]
    batch = next(iter(datamodule.train_dataloader()))
    assert batch["image"].shape == (64, 3, 32, 32) and batch["attributes"].shape == (64, 1)


def test_bad_minority_group_names_valid_values():
    cfg = compose_config(["data.minority_group=purple", "data.options.num_classes=20"])
    with pytest.raises(ValueError, match="valid values: \\['majority', 'minority'\\]"):
        DMLDataModule(cfg.data).setup()
