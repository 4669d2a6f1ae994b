"""Helpers shared by the tests (fixtures writers, doc-block runner, W&B file reader); not tests themselves."""
