"""Data card of a dataset as training composes it: data_card.json and a self-contained data_card.html.

image_hash.py  hand-written 64-bit difference hash (near-duplicates) and lazy image sizes
measure.py     the numbers (pure: a set-up DMLDataModule in, a dict out)
render.py      the page, from the model card's blocks and HTML renderer (escaping in one place)
write.py       `fairdml datacard`: compose, set up, measure, write
"""

from fairdml.reports.datacard.measure import measure_data
from fairdml.reports.datacard.write import write_data_card, write_data_card_files, write_run_data_card

__all__ = ["measure_data", "write_data_card", "write_data_card_files", "write_run_data_card"]
