"""The model card's threshold view in headless Chromium (Playwright driving Debian's `chromium`).

Moves the slider as a user would and checks that the per-group FMR/FNMR, counts, gaps and equal-FMR
thresholds the page displays equal a brute-force computation in Python at that threshold, that the page
makes no network request, and that a group named like a script shows as text and runs nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.fixtures_card import EVIL, fake_embeddings, write_fake_run

from fairdml.metrics.functional import thresholds as th
from fairdml.reports.card import write_model_card
from fairdml.reports.card.screenshot import CHROMIUM_ARGS, find_chromium

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    chromium = find_chromium()
    if chromium is None:
        pytest.skip("Chromium not found (apt-get install chromium; .ci/run installs it): browser test skipped")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed: pip install -e '.[dev]'")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


class Page:
    """A loaded card page that records network requests, script errors and dialogs (e.g. alert)."""

    def __init__(self, browser, url: str) -> None:
        self.requests: list[str] = []
        self.errors: list[str] = []
        self.dialogs: list[str] = []
        self.page = browser.new_page()
        self.page.on("request", lambda request: self.requests.append(request.url))
        self.page.on("pageerror", lambda error: self.errors.append(str(error)))
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("dialog", lambda dialog: (self.dialogs.append(dialog.message), dialog.dismiss()))
        self.page.goto(url)
        self.page.wait_for_load_state("load")

    def number(self, element_id: str) -> float | None:
        text = self.page.get_attribute(f"#{element_id}", "data-value")
        return None if text in ("", None) else float(text)

    def text(self, element_id: str) -> str:
        return self.page.text_content(f"#{element_id}")


def brute_force_rates(threshold: float) -> dict[str, dict[str, float | int]]:
    """Per group, FMR and FNMR at `threshold` by direct comparison of every sampled pair's cosine score."""
    arrays = fake_embeddings()
    pairs = th.sample_pairs(arrays["labels"], arrays["groups"], 5000, 0)  # the card's default settings
    z = arrays["embeddings"].astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    scores = np.clip((z[pairs.first] * z[pairs.second]).sum(axis=1), -1.0, 1.0)
    out = {}
    for g, name in enumerate(pairs.group_names):
        impostor = scores[(pairs.group == g) & ~pairs.genuine]
        genuine = scores[(pairs.group == g) & pairs.genuine]
        false_matches, false_non_matches = (
            int((impostor >= threshold).sum()),
            int((genuine < threshold).sum()),
        )
        out[name] = {
            "false_matches": false_matches,
            "fmr": false_matches / len(impostor),
            "false_non_matches": false_non_matches,
            "fnmr": false_non_matches / len(genuine),
        }
    return out


def check_rates(page: Page, names: list[str], threshold: float) -> dict[str, dict]:
    expected = brute_force_rates(threshold)
    assert page.number("threshold-value") == threshold
    for g, name in enumerate(names):
        for kind in ("fmr", "fnmr"):
            assert page.number(f"{kind}-{g}") == expected[name][kind], (name, kind, threshold)
            assert page.text(f"{kind}-{g}") == f"{100 * expected[name][kind]:.2f}%"
        assert page.number(f"fmr-errors-{g}") == expected[name]["false_matches"]
        assert page.number(f"fnmr-errors-{g}") == expected[name]["false_non_matches"]
    for kind in ("fmr", "fnmr"):
        values = [expected[name][kind] for name in names]
        assert page.number(f"gap-{kind}") == pytest.approx(max(values) - min(values), abs=1e-15)
        assert page.text(f"worst-{kind}") == names[int(np.argmax(values))]
    return expected


def test_slider_shows_python_rates_per_group(browser, tmp_path):
    paths = write_model_card(write_fake_run(tmp_path))
    page = Page(browser, paths["html"].resolve().as_uri())
    names = [page.text(f"group-name-{g}") for g in range(2)]
    assert sorted(names) == sorted(["majority", EVIL])  # the script-like name is shown as text...
    assert page.dialogs == [] and page.errors == []  # ...and never ran
    assert all(url.startswith(("file:", "data:")) for url in page.requests), page.requests

    slider = page.page.locator("#threshold-slider")
    data = "JSON.parse(document.getElementById('card-data').textContent)"
    thresholds = [float(t) for t in page.page.evaluate(f"{data}.threshold_view.thresholds")]
    start = int(slider.input_value())
    at_start = check_rates(page, names, thresholds[start])

    slider.focus()  # a user's move: keyboard steps of one grid threshold
    for _ in range(40):
        page.page.keyboard.press("ArrowLeft")
    assert int(slider.input_value()) == start - 40
    moved = check_rates(page, names, thresholds[start - 40])
    assert any(moved[n]["fmr"] != at_start[n]["fmr"] for n in names), "rates did not change"

    for index in (0, len(thresholds) // 3, len(thresholds) // 2, len(thresholds) - 1):
        slider.fill(str(index))  # sets the value and fires input/change like a drag
        check_rates(page, names, thresholds[index])
    assert page.errors == [] and page.dialogs == []


def test_equal_fmr_option_and_curves(browser, tmp_path):
    paths = write_model_card(write_fake_run(tmp_path))
    page = Page(browser, paths["html"].resolve().as_uri())
    names = [page.text(f"group-name-{g}") for g in range(2)]
    arrays = fake_embeddings()
    counts = th.pair_error_counts(arrays["embeddings"], th.sample_pairs(arrays["labels"], arrays["groups"]))
    index = len(counts.thresholds) // 2
    page.page.locator("#threshold-slider").fill(str(index))
    page.page.locator("#equalise-fmr").check()
    assert page.page.is_visible("#equalise-explain")
    equal = th.equal_fmr_thresholds(counts, index)
    assert page.number("target-fmr") == equal["target_fmr"]
    for g, name in enumerate(names):
        code = counts.group_names.index(name)
        assert page.number(f"thr-{g}") == equal["threshold"][code]
        assert page.number(f"fmr-{g}") == equal["fmr"][code] <= equal["target_fmr"]
        assert page.number(f"fnmr-{g}") == equal["fnmr"][code]
    for chart in ("rates", "roc", "det"):  # a curve per group (two on the rates chart), plus all groups
        paths_drawn = page.page.locator(f"#chart-{chart} path").count()
        assert paths_drawn == (2 * len(names) if chart == "rates" else len(names) + 1), chart
    assert page.errors == [] and page.dialogs == []
