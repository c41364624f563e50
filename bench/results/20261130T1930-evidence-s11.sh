#!/bin/bash
# s11: CPU (user, sys, wall) of `keizoku train --max-trials 2 --budget 60s` and its evidence step.
# "before" = 71787a5, "after" = s11-shap (SRC: a `git archive HEAD src` of each); digits.csv is
# sklearn.datasets.load_digits(as_frame=True).frame with target "d0".."d9".
# bench.sh SRC LABEL DATASET(csv) TARGET RUNS  -> appends lines to /tmp/h11/results.tsv
SRC=$1; LABEL=$2; CSV=$3; TARGET=$4; RUNS=${5:-3}
for i in $(seq 1 $RUNS); do
  D=$(mktemp -d /tmp/h11/run.XXXX); cd $D; cp $CSV .
  export PYTHONPATH=$SRC KEIZOKU_HOME=$D/.keizoku OMP_NUM_THREADS=1
  /work/main/.venv/bin/keizoku init $(basename $CSV) --target $TARGET >/dev/null 2>&1
  LOAD=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -o time.txt -f "%U %S %e" /work/main/.venv/bin/keizoku train --max-trials 2 --budget 60s > train.out 2>&1
  T=$(grep -o "· evidence [0-9.]*" train.out | head -1)
  EV=$(find .keizoku -name evaluation.json | head -1)
  IMP=$(find .keizoku -name importance.json | head -1)
  X=$(/work/main/.venv/bin/python -c "
import json,sys; e=json.load(open('$EV')); m=json.load(open('$IMP'))['members']
print(e['evidence_seconds'], e['learning_curve']['seconds'], len(m), sum(x['rows'] for x in m), ','.join(sorted(set(x['family'] for x in m))))")
  echo -e "$LABEL\t$(basename $CSV)\t$(cat time.txt)\t$T\t$X\tload=$LOAD" | tee -a /tmp/h11/results.tsv
  cd /tmp/h11; rm -rf $D
done
