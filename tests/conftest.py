import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The checkout under test comes first, before any installed copy.
if sys.path[0] != ROOT:
    sys.path.insert(0, ROOT)
