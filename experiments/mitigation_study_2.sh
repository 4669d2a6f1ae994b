#!/usr/bin/env bash
# Issue 27's study (docs/mitigations.md, "Round two"): the methods on two set-ups, trained to the plateau rule of
# round one (from scratch: plateau at epoch 52, 60 epochs; pretrained: plateau at epoch 34, 45 epochs), test
# report at the best validation checkpoint, downstream gaps, embeddings kept for the FMR gap at the card's
# threshold. `--jobs 2`: two runs at a time, one thread each, on a 2-core machine.
# Every multirun resumes: run this script again and the finished runs are kept, the rest are run.
#   pretrained: fairdml's self-supervised digits backbone (model.pretrained_path=fairdml:rotations), all methods
#   scratch:    baseline and group_balanced again (the pairs and the goal's reference; they also check that the
#               code reproduces round one's figures, so round one's runs of the other methods are reused), and
#               the methods new in round two
#   dro_sweep:  GroupDRO's step size with held-out group losses, seeds 0 and 1 (the tables use 0.3)
# Then: python experiments/mitigation_summary.py outputs/mitigations experiments/results --round2 outputs/study2
set -euo pipefail
out=${1:-outputs/study2}
methods=baseline,group_balanced,reweighted,worst_group_heldout,parade,parade_paper,group_balanced_parade
new=fpr_penalty,fair_contrastive,group_balanced_fpr_penalty,group_balanced_fair_contrastive
common="evaluation.downstream=true evaluation.model_card=false logger.wandb.enabled=false
 trainer.enable_progress_bar=false"
mkdir -p "$out"
sweep() { local name=$1; shift; fairdml train -m --jobs 2 "$@" $common --sweep-dir "$out/$name" >> "$out/$name.log" 2>&1 || true; }
sweep pretrained seed=0,1,2,3,4 experiment=$methods,$new model.pretrained_path=fairdml:rotations trainer.max_epochs=45
sweep scratch seed=0,1,2,3,4 experiment=baseline,group_balanced,worst_group_heldout,$new trainer.max_epochs=60
sweep dro_sweep seed=0,1 experiment=worst_group_heldout callbacks.worst_group.step_size=0.1,1.0 trainer.max_epochs=60
