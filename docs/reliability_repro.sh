#!/usr/bin/env bash
# usage: repro.sh CODE_DIR OUT_DIR  — the issue's reproductions against one version of fairdml
# (the fixture and the fault runner come from this checkout's tests/, whichever version CODE_DIR is)
HERE=$(cd "$(dirname "$0")/.." && pwd)
CODE=$(cd "$1" && pwd); OUT=$2; rm -rf "$OUT"; mkdir -p "$OUT"; cd "$OUT"
export PYTHONPATH=$CODE WANDB_MODE=disabled
T="model=tiny data.options.num_classes=30 data.options.samples_per_class=12 data.batch_size=32 data.eval_batch_size=128 trainer.enable_progress_bar=false logger=csv evaluation.leakage=false evaluation.model_card=false"
echo "== 1. sampler len vs yielded, default config"
python -c "from fairdml.config import compose_config; from fairdml.data.datamodule import DMLDataModule; c=compose_config([]); d=DMLDataModule(c.data,seed=0); d.setup(); s=d.train_sampler(); print(len(s), [(s.set_epoch(e), sum(1 for _ in s))[1] for e in range(16)])" 2>&1 | tail -1
echo "== 1b. heavy-tailed (LFW-shaped) folder+CSV, 3 epochs: validated epochs, best checkpoint"
python -c "
import sys; sys.path.insert(0, '$HERE/tests'); from pathlib import Path
from fixtures_datasets import write_heavy_tailed_folder_dataset
p=Path('lfw'); p.mkdir(); print(write_heavy_tailed_folder_dataset(p))" > /dev/null
python -m fairdml train model=tiny trainer.enable_progress_bar=false logger=csv evaluation.leakage=false evaluation.model_card=false data=folder data.root=lfw data.sensitive_attribute=skin data.batch_size=16 data.samples_per_class=2 data.image_size=16 trainer.max_epochs=3 data.minority_share=null run_dir=heavy > heavy.log 2>&1; echo "exit $?"
python -c "
import csv,json; rows=[r for r in csv.DictReader(open('heavy/csv/metrics.csv')) if r.get('val/recall_at_1')]; print('validated epochs', [r['epoch'] for r in rows]); print('best_checkpoint', repr(json.load(open('heavy/report.json'))['meta']['best_checkpoint']))"
echo "== 2. SIGKILL after batch 2 of epoch 1, resume=last vs uninterrupted (3 epochs)"
K="$T trainer.max_epochs=3 trainer.log_every_n_steps=1 checkpoint.monitor=train/loss checkpoint.mode=min"
python $HERE/tests/helpers/fault_runner.py none $K run_dir=ref > ref.log 2>&1
python $HERE/tests/helpers/fault_runner.py train:1:2 $K run_dir=killed > killed.log 2>&1; echo "killed: exit $?"
python $HERE/tests/helpers/fault_runner.py none $K run_dir=killed resume=last > resumed.log 2>&1; echo "resumed: exit $?"
python -c "
import csv,json
a=json.load(open('ref/report.json')); b=json.load(open('killed/report.json'))
print('recall@1 uninterrupted %.6f resumed %.6f; map@r %.6f vs %.6f' % (a['overall']['recall@1'], b['overall']['recall@1'], a['overall']['map@r'], b['overall']['map@r']))
ra=list(csv.DictReader(open('ref/csv/metrics.csv'))); rb=list(csv.DictReader(open('killed/csv/metrics.csv')))
steps=lambda rows: [(r['epoch'], r['step']) for r in rows if r.get('train/loss')]
sb=steps(rb); print('metrics.csv rows', len(ra), 'vs', len(rb), '; duplicated train-loss steps in resumed:', len(sb)-len(set(sb)))"
echo "== 3. run_dir reused without resume"
python -m fairdml train $T trainer.max_epochs=1 run_dir=reuse > r1.log 2>&1; echo "first: exit $?"
python -m fairdml train $T trainer.max_epochs=1 run_dir=reuse seed=1 > r2.log 2>&1; echo "second: exit $?"; tail -1 r2.log
python -c "
import csv; rows=[r for r in csv.DictReader(open('reuse/csv/metrics.csv')) if r.get('val/recall_at_1')]; print('val rows in metrics.csv', len(rows))"; ls reuse/checkpoints | tr '\n' ' '; echo
echo "== 4. fairdml export RUN (default out)"
python -m fairdml export reuse > e.log 2>&1; echo "exit $?"; tail -1 e.log
echo "== 5/7. bad values"
for o in optim.lr=-1 trainer.max_epochs=0 trainer.max_epochs=-1 data.image_size=0 model.embedding_dim=0 seed=-5 data.samples_per_class=0 +loss.kwargs.not_an_option=1; do
  timeout 300 python -m fairdml train $T trainer.max_epochs=1 run_dir=bad_${o//[^a-z0-9]/_} $o > bad.log 2>&1; rc=$?
  echo "$o -> exit $rc, $(grep -c Traceback bad.log) traceback(s): $(grep -E 'error|Error' bad.log | tail -1 | cut -c1-240)"
done
echo "== 6. a group of n=1 in an audit"
python -c "
import numpy as np; r=np.random.default_rng(0); e=r.normal(size=(41,8)).astype('float32'); y=np.r_[np.repeat(np.arange(10),4),[3]]; g=np.array(['large']*40+['tiny'])
np.savez('tiny.npz', embeddings=e, labels=y, groups=g)"
python -m fairdml audit tiny.npz --out audit_tiny --no-card > a.log 2>&1
python -c "
import json; r=json.load(open('audit_tiny/report.json')); print('worst_group of recall@1:', r['gaps']['recall@1']['worst_group'], '| flags:', {k:v for k,v in r['gaps']['recall@1'].items() if 'small' in k}, '| warnings naming tiny:', [w for w in r.get('warnings',[]) if 'tiny' in w and 'small' in w][:1] or 'none')"
