"""Small helpers beneath every layer: each module imports nothing from fairdml but other helpers here, and
no heavy library at import unless its job needs one (`run_folder`: torch's checkpoint loading; `targets`: Hydra).

- `atomic`: atomic file writes (a file is the old one or the whole new one).
- `numbers`: finite numbers and strict JSON; `nested`: dotted key paths of nested mappings.
- `errors`: fairdml's own error types; `rules`: the vocabulary of value checks (`Rule`, `at_least`, ...).
- `group_names`: the names of crossed groups; `run_layout` / `run_folder`: a run folder's files and rules.
- `config_files`: where the YAML configs live; `targets`: objects named by `_target_`; `_lazy`: lazy exports.

Internal: import a helper from its module (`from fairdml.utils.atomic import write_json`); this package
exports nothing itself, so importing one helper loads only that one.
"""
