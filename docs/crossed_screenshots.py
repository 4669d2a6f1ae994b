"""Re-make docs/crossed_groups_card.png and docs/data_card.png: a 3-epoch tiny run on the two-attribute CelebA
fixture of tests/test_intersectional.py (90 identities x 6 generated images), then headless Chromium.

    OMP_NUM_THREADS=1 python docs/crossed_screenshots.py /tmp/crossed   # from the repository root, ~1 min
"""

import sys
from pathlib import Path

sys.path[:0] = ["tests", "."]

from PIL import Image  # noqa: E402
from test_intersectional import overrides, write_two_attribute_celeba  # noqa: E402

from fairdml.config import compose_config  # noqa: E402
from fairdml.reports.card import screenshot_card  # noqa: E402
from fairdml.train import run_training  # noqa: E402

base = Path(sys.argv[1] if len(sys.argv) > 1 else "/tmp/crossed")
write_two_attribute_celeba(base / "celeba", n_classes=90, images=6)
run = run_training(compose_config([*overrides(base / "celeba", base / "run"), "trainer.max_epochs=3"]))
card = screenshot_card(run / "model_card.html", "docs/crossed_groups_card.png", selector="#quantitative-analyses")
tables = Image.open(card)
heading = 1930  # the tables end where "Verification error rates against the threshold" starts (1072 px wide)
tables.crop((0, 0, tables.size[0], min(heading, tables.size[1]))).quantize(256).save(card, optimize=True)
data = screenshot_card(run / "data_card.html", "docs/data_card.png")
Image.open(data).quantize(256).save(data, optimize=True)
