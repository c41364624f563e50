#!/usr/bin/env bash
# The whole `keizoku monitor reference --since 2d --json` over the 1M-row log, wall time
# from outside, alternating default / --no-multivariate, 5 rounds.
cd /work/wt/d14/bench/work/drift/1000000/keizoku
export KEIZOKU_HOME=$PWD/.keizoku KEIZOKU_LOG_ROOT=$PWD/log PYTHONPATH=/work/wt/d14/src
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S)"
for round in 1 2 3 4 5; do
  for extra in "" "--no-multivariate"; do
    start=$(date +%s.%N)
    /work/main/.venv/bin/keizoku monitor reference --since 2d --json $extra > /tmp/qm.json
    rc=$?
    end=$(date +%s.%N)
    python3 -c "
import json,sys; d=json.load(open('/tmp/qm.json'))
print('round $round', '${extra:-default}', 'rc', $rc, 'wall %.2f' % ($end-$start), 'drifted', d['drifted'], 'multivariate auc', (d.get('multivariate') or {}).get('auc'), 'timings', d.get('timings'))"
  done
done
echo "load: $(cut -d' ' -f1-3 /proc/loadavg) at $(date -u +%H:%M:%S)"
