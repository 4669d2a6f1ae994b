"""Model card of a run folder: MODEL_CARD.md (Hugging Face metadata), a sidecar JSON, and a self-contained
HTML page with an interactive threshold view.

Why: a fairness audit helps only if a reader sees, per group, how the model behaves where it is used. The
card follows "Model Cards for Model Reporting" (Mitchell et al., FAT* 2019) and is filled from the run
folder (docs/architecture.md); what only a person knows comes from a YAML file
(configs/card/card_inputs.yaml) and shows as a marked prompt when missing.

Modules, in the order the data flows:
  inputs.py        the person-only fields (YAML)            ../runs.py        reading the run folder (Run)
  verification.py  threshold-view numbers (per-group FMR/FNMR from metrics.functional.thresholds)
  blocks.py        content model + number formatting        metric_names.py   metric labels
  sections.py / datasheet.py / results.py                   the card's sections (Mitchell et al.'s order)
  metadata.py      Hugging Face front matter (eval_results, one slice per group)
  render_markdown.py / render_html.py / threshold_html.py   the two renderings; assets/ CSS, JS, template
  write.py         write_model_card: the entry point         screenshot.py     PNG via headless Chromium
"""

from fairdml.reports.card.inputs import CardInputs, VerificationSettings, load_card_inputs
from fairdml.reports.card.screenshot import screenshot_card
from fairdml.reports.card.write import CARD_FILES, write_model_card

__all__ = [
    "CARD_FILES",
    "CardInputs",
    "VerificationSettings",
    "load_card_inputs",
    "screenshot_card",
    "write_model_card",
]
