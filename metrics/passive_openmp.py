"""Make OpenMP worker threads sleep, not spin, while they wait: import this before torch or faiss.

faiss and torch each ship their own libgomp, and each pool spins by default after a parallel region.
On this shared 2-core machine the spinning of one starved the other: faiss' PQ training on 49k × 64
rows took 13.3 s with torch merely imported, 3.8 s alone, 0.23 s with ``OMP_WAIT_POLICY=PASSIVE``
(load ~3). The variable is read once, when a runtime is loaded, so importing this module after
torch or faiss changes nothing; a value the user set is kept.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
