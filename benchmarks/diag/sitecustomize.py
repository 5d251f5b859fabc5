"""Diagnostics injected into the Tollgate web process by `run.py --gc-log` / `--gc-freeze` (PYTHONPATH).

--gc-log: every collection of the oldest generation is appended to $TOLLGATE_BENCH_GC_LOG as
"<epoch> <generation> <pause ms> <collected>", to match latency tails against GC pauses.
--gc-freeze S: S seconds after start, collect once and gc.freeze() everything alive (start-up
objects: Django, the tokenizer tables) so later full collections no longer traverse them: an
experiment for the relay, never something the benchmark does by default.
"""

import gc
import os
import threading
import time

_LOG = os.environ.get("TOLLGATE_BENCH_GC_LOG")
_FREEZE = os.environ.get("TOLLGATE_BENCH_GC_FREEZE_AFTER")

if _LOG:
    _started = [0.0]

    def _on_gc(phase, info):
        if info.get("generation", 0) < 2:
            return
        if phase == "start":
            _started[0] = time.perf_counter()
            return
        pause = (time.perf_counter() - _started[0]) * 1000
        with open(_LOG, "a") as handle:
            handle.write(f"{time.time():.4f} {info['generation']} {pause:.3f} {info.get('collected', 0)}\n")

    gc.callbacks.append(_on_gc)

if _FREEZE:
    def _freeze():
        gc.collect()
        gc.freeze()

    _timer = threading.Timer(float(_FREEZE), _freeze)
    _timer.daemon = True
    _timer.start()
