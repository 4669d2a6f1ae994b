"""fairdml: train and audit fair deep metric learning models (finDML metrics, PARADE)."""

__version__ = "0.1.0"
