#!/usr/bin/env bash
# The final PARADE sweep of docs/parade.md: `experiment=parade` at seven strengths and the group-balanced
# baseline, 3 seeds each, default training settings (15 epochs), into one sweep folder; two multiruns at a
# time (one thread each) on a 2-core machine. The plain baseline is the default experiment at seeds 0-2
# (docs/baseline_gap.md: outputs/baseline_gap_v2/seed{0,1,2}, copied to outputs/parade_sweep_v2/baseline/).
# Then: python experiments/parade_sweep.py outputs/parade_sweep_v2 ; fairdml compare outputs/parade_sweep_v2
set -euo pipefail
out=outputs/parade_sweep_v2
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1
common="trainer.enable_progress_bar=false logger.wandb.enabled=false"
nice -n 10 fairdml train -m experiment=parade callbacks.parade.strength=0,0.03,0.1,0.25 seed=0,1,2 $common \
  --sweep-dir $out/parade_a > $out.a.log 2>&1 &
{
  nice -n 10 fairdml train -m experiment=parade callbacks.parade.strength=1,4,16 seed=0,1,2 $common --sweep-dir $out/parade_b
  nice -n 10 fairdml train -m experiment=group_balanced seed=0,1,2 $common --sweep-dir $out/group_balanced
} > $out.b.log 2>&1 &
wait
mkdir -p $out/baseline && cp -r outputs/baseline_gap_v2/seed0 outputs/baseline_gap_v2/seed1 outputs/baseline_gap_v2/seed2 $out/baseline/
# PARADE on top of group-balanced sampling, at the default strength of experiment=parade
nice -n 10 fairdml train -m experiment=group_balanced_parade seed=0,1,2 $common \
  --sweep-dir $out/group_balanced_parade
