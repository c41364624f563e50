"""Run a command and print its wall time and peak resident memory (its process tree's largest
process, Linux ru_maxrss) as one JSON line:  python peak.py CMD [ARGS...]"""

import json
import resource
import subprocess
import sys
import time

t0 = time.perf_counter()
rc = subprocess.run(sys.argv[1:]).returncode
secs = time.perf_counter() - t0
rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
print("PEAK " + json.dumps({"rc": rc, "seconds": secs, "peak_rss_mb": rss}), flush=True)
sys.exit(rc)
