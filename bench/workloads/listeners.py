"""Listeners the benchmark names with --listener listeners:NAME (this directory is the programs' path)."""


class Noop:
    """A no-op listener of start and end: the call machinery's own cost."""

    def start(self, call):
        pass

    def end(self, call, result):
        pass


class Uninterested:
    """A listener interested in no call (close alone): hooked code runs with nobody hearing."""

    def close(self):
        pass
