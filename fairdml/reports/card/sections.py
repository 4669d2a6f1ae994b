"""The card's sections in the order of "Model Cards for Model Reporting" (Mitchell et al., FAT* 2019).

Data sections (datasheet) are in card/datasheet.py, the disaggregated results in card/results.py; this
module holds the descriptive sections and puts all of them in order.
"""

from __future__ import annotations

import json

import yaml

from fairdml import __version__
from fairdml.reports.card.blocks import (
    Block,
    Bullets,
    Code,
    Heading,
    Section,
    Table,
    Text,
    fmt_number,
    fmt_percent,
    user_blocks,
)
from fairdml.reports.card.datasheet import evaluation_data_section, training_data_section
from fairdml.reports.card.inputs import CardInputs
from fairdml.reports.card.metric_names import metric_info
from fairdml.reports.card.results import SMALL_FLAG, quantitative_section
from fairdml.reports.card.verification import Verification
from fairdml.reports.runs import Run, get_path
from fairdml.utils.nested import dotted_keys


def _mitigations(run: Run) -> dict[str, dict]:
    """`report["mitigations"]`: each mitigation's title, summary, settings and measured figures."""
    return run.report.get("mitigations") or {}


def mitigation_names(run: Run) -> str:
    return ", ".join(str(entry.get("title", name)) for name, entry in _mitigations(run).items()) or "none"


def _mitigation_blocks(run: Run) -> list[Block]:
    """One heading per mitigation the run trained with: what it does, its settings, what it measured."""
    blocks: list[Block] = []
    for name, entry in _mitigations(run).items():
        settings = [[key, json.dumps(value)] for key, value in (entry.get("settings") or {}).items()]
        blocks += [Heading(str(entry.get("title", name))), Text(str(entry.get("summary", "")))]
        blocks.append(Table(["Setting", "Value"], settings) if settings else Text("No settings."))
        measured = dotted_keys(entry.get("measured") or {})
        if measured:
            rows = [[key, fmt_number(value, 4) if isinstance(value, float) else json.dumps(value)]
                    for key, value in measured.items()]  # fmt: skip
            blocks.append(Table(["Measured at the test", "Value"], rows))
    return blocks


def _facts(run: Run, model_name: str) -> list[list[str]]:
    config, meta = run.config or {}, run.report.get("meta") or {}
    dim = get_path(config, "model.embedding_dim")
    if dim is None and run.arrays is not None:
        dim = run.arrays["embeddings"].shape[1]
    backbone = get_path(config, "model.backbone", "n/a")
    epochs = meta.get("epochs_trained", get_path(config, "trainer.max_epochs"))
    seed = meta.get("seed", get_path(config, "seed"))
    return [
        ["Model", model_name],
        ["Type", f"Deep metric learning image encoder: {backbone} backbone, "
         f"{fmt_number(dim)}-d L2-normalised embedding"],
        ["Loss", f"{get_path(config, 'loss.name', 'n/a')} (miner: {get_path(config, 'loss.miner', 'none')})"],
        ["Training", f"{fmt_number(epochs)} epochs, optimiser {get_path(config, 'optim.name', 'n/a')}, "
         f"seed {fmt_number(seed)}"],
        ["Mitigations", mitigation_names(run)],
        ["Run folder", run.path.name],
        ["Software", f"fairdml {__version__}"],
    ]  # fmt: skip


def model_details_section(run: Run, inputs: CardInputs, model_name: str) -> Section:
    """What the model is, who made it, and how it was trained (each mitigation's settings included)."""
    rows = _facts(run, model_name) + ([["Citation", inputs.citation]] if inputs.citation else [])
    blocks: list[Block] = [*user_blocks(inputs.description, "description"), Table(["Field", "Value"], rows)]
    for key in ("developers", "license", "contact"):
        blocks += [Heading(key.capitalize()), *user_blocks(getattr(inputs, key), key)]
    blocks += _mitigation_blocks(run)
    if run.config:
        config_yaml = yaml.safe_dump(run.config, sort_keys=False)
        blocks.append(Code("Full training configuration (config.yaml)", config_yaml))
    else:
        blocks.append(Text("config.yaml is missing from the run folder: the training settings are unknown."))
    return Section("model-details", "Model details", blocks)


def intended_use_section(inputs: CardInputs) -> Section:
    blocks: list[Block] = []
    for title, key in (
        ("Primary intended uses", "intended_uses"),
        ("Primary intended users", "intended_users"),
        ("Out-of-scope uses", "out_of_scope_uses"),
    ):
        blocks += [Heading(title), *user_blocks(getattr(inputs, key), key)]
    return Section("intended-use", "Intended use", blocks)


def factors_section(run: Run, inputs: CardInputs) -> Section:
    groups = run.report.get("groups") or {}
    listed = ", ".join(f"{name} (n = {fmt_number(entry.get('n'))})" for name, entry in groups.items())
    text = f"Every figure is disaggregated by the sensitive attribute '{run.group_attribute}'. Groups: {listed}."
    blocks: list[Block] = [Heading("Evaluated groups"), Text(text), Heading("Relevant factors")]
    return Section("factors", "Factors", blocks + user_blocks(inputs.relevant_factors, "relevant_factors"))


def _verification_definitions(verification: Verification) -> list[Block]:
    s = verification.settings
    how = (
        f"set to {s.operating_threshold} in the card inputs"
        if s.operating_threshold is not None
        else f"the loosest threshold whose FMR over all groups' pairs is at most {fmt_percent(s.target_fmr)}"
    )
    cap = fmt_number(s.max_pairs_per_group)
    return [
        Text("Verification (two images match when their cosine similarity ≥ threshold):"),
        Bullets([
            f"FMR ({metric_info('fmr')[1]}).",
            f"FNMR ({metric_info('fnmr')[1]}).",
            f"Operating threshold {fmt_number(verification.operating_threshold, 3)}: {how}.",
            f"Pairs: both samples in the same group; at most {cap} genuine and {cap} impostor pairs per "
            f"group, drawn with seed {s.seed}.",
            "95% Wilson intervals treat pairs as independent; they share samples, so read the intervals as "
            "lower bounds on the uncertainty.",
        ]),
    ]  # fmt: skip


def metrics_section(run: Run, verification: Verification | None) -> Section:
    overall = run.report.get("overall") or {}
    definitions = [f"{metric_info(m)[0]}: {metric_info(m)[1]}." for m in overall if metric_info(m)[1]]
    blocks: list[Block] = [
        Text("Retrieval and embedding geometry (finDML, Dullerud et al. 2022):"),
        Bullets(definitions),
        Text("Gaps: per metric, the largest minus smallest group value, the ratio min/max, the worst group."),
    ]  # fmt: skip
    minimum = (run.report.get("settings") or {}).get("min_group_size")
    if minimum is not None and minimum > 1:
        blocks.append(
            Text(
                f"Groups with fewer than {fmt_number(minimum)} test samples are marked {SMALL_FLAG}: their "
                "figures are uncertain, they count in the gaps, and they are named worst group only when no "
                "larger group has a value."
            )
        )
    if run.report.get("intervals"):
        settings = run.report.get("settings") or {}
        kind = (  # reports before issue 27 have no interval_method: plain percentile intervals throughout
            "intervals (expanded percentile overall and per group; on the gaps by test inversion, which reaches 0 "
            "when the groups are compatible with no gap)"
            if settings.get("interval_method")
            else "percentile intervals"
        )
        blocks.append(
            Text(
                f"Intervals on recall@k and mAP@R, and on their gaps: 95 % {kind}, from a bootstrap over classes "
                "(identities), the unit of a class-disjoint test split; the gallery is fixed "
                f'({fmt_number(settings.get("bootstrap_resamples"))} resamples, report.json\'s "intervals").'
            )
        )
    if verification is not None:
        blocks += _verification_definitions(verification)
    return Section("metrics", "Metrics", blocks)


def ethics_section(run: Run, inputs: CardInputs) -> Section:
    titles = mitigation_names(run)
    use = f"evaluation and, in training, for: {titles}" if _mitigations(run) else "evaluation"
    blocks: list[Block] = [Text(f"The sensitive attribute '{run.group_attribute}' was used for {use}.")]
    blocks += user_blocks(inputs.ethical_considerations, "ethical_considerations")
    return Section("ethical-considerations", "Ethical considerations", blocks)


SMALL_GROUP = 50  # test samples below which a group's figures are flagged as uncertain
FEW_PAIRS = 100  # genuine or impostor pairs below which a group's error rates are flagged as coarse


def caveats_section(run: Run, inputs: CardInputs, verification: Verification | None) -> Section:
    notes = [f"report.json warning: {w}" for w in run.report.get("warnings") or []]
    for name, entry in (run.report.get("groups") or {}).items():
        n = entry.get("n")
        if entry.get("small"):  # below report.json's min_group_size
            notes.append(
                f"Group '{name}' {SMALL_FLAG}: only {n} test samples, so its figures are uncertain; it is "
                "named worst group only when no larger group has a value."
            )
        elif isinstance(n, int) and n < SMALL_GROUP:
            notes.append(f"Group '{name}' has only {n} test samples: its figures are uncertain.")
    if verification is not None:
        counts = verification.counts
        for g, name in enumerate(counts.group_names):
            if min(counts.genuines[g], counts.impostors[g]) < FEW_PAIRS:
                notes.append(
                    f"Group '{name}' has {counts.genuines[g]} genuine and {counts.impostors[g]} impostor "
                    "pairs: its error rates are coarse."
                )
    notes.append("Test classes are unseen in training; results on other populations or image sources may differ.")
    blocks: list[Block] = [Bullets(notes)]
    blocks += user_blocks(inputs.caveats_and_recommendations, "caveats_and_recommendations")
    return Section("caveats", "Caveats and recommendations", blocks)


def build_sections(run: Run, inputs: CardInputs, verification: Verification | None, model_name: str) -> list[Section]:
    """The card's content, in Mitchell et al.'s order."""
    return [
        model_details_section(run, inputs, model_name),
        intended_use_section(inputs),
        factors_section(run, inputs),
        metrics_section(run, verification),
        evaluation_data_section(run),
        training_data_section(run),
        quantitative_section(run, verification),
        ethics_section(run, inputs),
        caveats_section(run, inputs, verification),
    ]
