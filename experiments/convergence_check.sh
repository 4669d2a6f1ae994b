#!/usr/bin/env bash
# A first look at convergence for issue 16's mitigation study (one seed, not the study itself): the baseline for
# 80 epochs (its validation curve sets the epoch count), then four mitigations for 60 epochs, two runs at a time
# with one thread each on a 2-core machine. Summarised into experiments/results/convergence_seed0.jsonl by
#   python experiments/convergence_summary.py outputs/convergence > experiments/results/convergence_seed0.jsonl
set -euo pipefail
out=${1:-outputs/convergence}
common="seed=0 logger.wandb.enabled=false trainer.enable_progress_bar=false evaluation.model_card=false"
mkdir -p "$out"
fairdml train experiment=baseline trainer.max_epochs=80 run_dir="$out/baseline80" $common > "$out/baseline80.log" 2>&1
run() { OMP_NUM_THREADS=1 fairdml train experiment="$1" trainer.max_epochs=60 run_dir="$out/$1_60" $common > "$out/$1_60.log" 2>&1; }
run group_balanced & run reweighted & wait
run worst_group & run parade & wait
