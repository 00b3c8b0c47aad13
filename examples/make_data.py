"""How data/regression.csv was made (kept for provenance; the file itself is versioned by DVC).

python examples/make_data.py data/regression.csv && dvc add data/regression.csv
"""

import csv
import random
import sys

rng = random.Random(2024)
true_w = [1.5, -2.0, 0.7, 0.0]
with open(sys.argv[1], "w", newline="") as fh:
    out = csv.writer(fh)
    out.writerow(["x1", "x2", "x3", "x4", "y"])
    for _ in range(400):
        x = [round(rng.uniform(-1, 1), 4) for _ in true_w]
        y = sum(w * v for w, v in zip(true_w, x)) + 0.3 + rng.gauss(0, 0.1)
        out.writerow([*x, round(y, 4)])
