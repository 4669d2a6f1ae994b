"""Issue 27: the 95 % interval of the Recall@1 gap covers the true gap in 93-97 % of simulated test splits.

500 simulated splits per setting (30 classes, 20 queries each; two and three groups; true gap 0, small, large),
1,000 class resamples each, through the same functions as a report (`interval_simulation`). The old percentile
interval of max - min is kept as the counter-example: it (almost) never covers a true gap of 0. With 500 splits
the coverage's Monte Carlo standard error is ~1 point, so 93-97 % is +-2 of them around 95 %. The table and a
2,000-split run: docs/model_card.md, "The gap's interval" (experiments/interval_coverage.py).
"""

from __future__ import annotations

import pytest
import torch

from fairdml.metrics.functional.interval_simulation import SETTINGS, coverage_row, simulate_intervals

DATA_SETS, RESAMPLES, SEED = 500, 1000, 0


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize("setting", SETTINGS, ids=[setting.name for setting in SETTINGS])
def test_the_gap_interval_covers_the_true_gap(setting):
    row = coverage_row(setting, simulate_intervals(setting, DATA_SETS, RESAMPLES, 0.95, SEED))
    assert 0.93 <= row["inversion coverage"] <= 0.97, row
    assert row["inversion excludes point"] == 0, row  # the interval always holds the observed gap
    # each group's own interval: the expansion lifts ~91 % to ~93-94 % (skewed hit rates of 10-15 classes keep it
    # below 95 %; docs/model_card.md), so this asserts the gain, not the band
    assert row["groups expanded coverage"] >= max(0.92, row["groups percentile coverage"]), row
    if setting.true_gap == 0:  # why the method changed: the percentile interval of max - min sits above 0
        assert row["percentile coverage"] < 0.05, row
