"""``python -m hookwise [options] script.py [args...]``: the runner of ``hookwise.cli``."""

import sys

from hookwise.cli import main

if __name__ == "__main__":
    sys.exit(main(prog="python -m hookwise"))
