"""benchmarks/gpu_schedule.py's two launch models on hand-countable cases (in a subprocess: the benchmark pins
BLAS to one thread when it is imported)."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent

CODE = """
import json, sys
import numpy as np
sys.path.insert(0, "benchmarks")
import gpu_schedule as g
s = np.array([4.0, 1, 1, 1, 1, 1, 1, 1])
print(json.dumps({
    "one_each_block1_slots2": g.one_thread_each(s, 2, 1),
    "one_each_block2_slots1": g.one_thread_each(s, 2, 2),
    "one_each_all_resident": g.one_thread_each(s, 8, 1),
    "refill_2": g.refill(s, 2),
    "refill_3": g.refill(s, 3),
    "refill_more_threads_than_work": g.refill(s, 100),
    "util": g.utilisation(np.array([s]), 8, 2, 1, np.random.default_rng(0)),
}))
"""


def test_launch_lengths_by_hand():
    """Steps 4,1,1,1,1,1,1,1, in order. One thread each, 2 slots of 1-thread blocks: one slot runs the 4 while
    the other runs four 1s, then the last three alternate -> 6. Blocks of 2 threads on 1 slot: the blocks
    last 4,1,1,1 -> 7. All resident: the longest, 4. Refill with 2 threads is the same greedy list -> 6;
    with 3 threads, two threads share the seven 1s beside the 4 -> 4; more threads than work -> 4."""
    proc = subprocess.run([sys.executable, "-c", CODE], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    r = json.loads(proc.stdout.strip().splitlines()[-1])
    assert r["one_each_block1_slots2"] == 6
    assert r["one_each_block2_slots1"] == 7
    assert r["one_each_all_resident"] == 4
    assert r["refill_2"] == 6
    assert r["refill_3"] == 4
    assert r["refill_more_threads_than_work"] == 4
    u = r["util"]
    assert u["utilisation_one_thread_each"] <= u["utilisation_refill"] <= 1.0
    assert u["utilisation_refill_longest_first"] <= 1.0
