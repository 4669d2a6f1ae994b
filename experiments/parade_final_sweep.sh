#!/usr/bin/env bash
# The final PARADE sweep of docs/parade.md: PARADE at four strengths and the group-balanced baseline,
# 3 seeds each, default training settings (15 epochs), into one sweep folder. The plain baseline is the
# default experiment at seeds 0-2 (the lead's outputs/baseline_gap runs, copied to
# outputs/parade_sweep/baseline/seed{0,1,2}). Then: fairdml compare outputs/parade_sweep
set -euo pipefail
nice -n 10 fairdml train -m experiment=parade parade.strength=0,4,16,64 seed=0,1,2 \
  trainer.enable_progress_bar=false --sweep-dir outputs/parade_sweep/parade
nice -n 10 fairdml train -m experiment=group_balanced seed=0,1,2 \
  trainer.enable_progress_bar=false --sweep-dir outputs/parade_sweep/group_balanced
