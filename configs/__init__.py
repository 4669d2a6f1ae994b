"""The default configs, shipped as the package `fairdml.configs` (pyproject.toml maps it to this folder).

Only the YAML files matter; this file makes the folder an importable package, so `importlib.resources`
finds it in a wheel, an editable install and a zip alike (fairdml/utils/config_files.py).
"""
