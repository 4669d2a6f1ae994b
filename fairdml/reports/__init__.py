"""What people read: report files, audits, run comparisons and the model card."""

from fairdml.utils._lazy import lazy_exports

_MODULES = {
    "fairdml.reports.report": ("save_report", "load_report", "format_report_table", "format_headline"),
    "fairdml.reports.long_table": ("to_frame", "report_rows"),
    "fairdml.reports.audit": ("run_audit",),
    "fairdml.reports.runs": ("Run", "load_run", "find_runs"),
    "fairdml.reports.compare": ("run_compare",),
    "fairdml.reports.tradeoff": ("group_settings",),
    "fairdml.reports.card.write": ("write_model_card",),
}
__all__, __getattr__, __dir__ = lazy_exports(__name__, _MODULES)
