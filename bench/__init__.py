"""The benchmark harness (`drgrad bench`): every cell × seed of a grid on one protocol, then
tables (report.md, in the layout of the DRGrad paper's Tables 2, 3 and 5), paired t-tests and
figures (Figs. 4–7 quantities). Liu, Miao and Xia, "Direct Routing Gradient (DRGrad)", AAAI 2025
(arXiv 2510.09643).

Modules: `presets` (cells and named grids), `harness` (runs `drgrad.training.train.train` per cell ×
seed and writes results.csv), `events` (reads the TensorBoard logs a run writes), `report`
(statistics and report.md), `plots` (PNG figures), `cli` (``drgrad bench``).
"""
import os

os.environ["TF_USE_LEGACY_KERAS"] = "1"
