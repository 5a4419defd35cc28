"""Workload: converts bench/workloads/text.md (hookwise's README as of 3b561d9) to HTML with minimark, several times.

    python markdown_html.py [ROUNDS]

Pure Python from end to end: the benchmark hooks every function of minimark.
"""

import hashlib
import os
import sys

import minimark

rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 16
# beside minimark, not beside __file__: under yappi and cProfile __file__ is theirs
with open(os.path.join(os.path.dirname(os.path.abspath(minimark.__file__)), "text.md"), encoding="utf-8") as handle:
    text = handle.read()
digest = hashlib.sha256()
for _ in range(rounds):
    digest.update(minimark.convert(text).encode())
print("markdown", rounds, digest.hexdigest()[:16])
