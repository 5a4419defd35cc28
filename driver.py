"""The checkout's entry point: ``python driver.py [options] script.py [args...]``.

The runner is ``hookwise.cli``; an installed copy runs it as the ``hookwise``
command or ``python -m hookwise``. This file stays thin: every frame it adds
sits below the program's own.
"""

import sys

from hookwise.cli import main

if __name__ == "__main__":
    sys.exit(main(prog=f"python {sys.argv[0]}"))
