"""Install hookwise.audit for the ``audit:EVENT`` targets of a run (nothing when there are none).

The audit hook lives in the runtime (hookwise/audit.py); this only hands it
the targets, the frames of hookwise's pure-Python wrappers (they call the
original for the program, so an event raised under one is the program's) and
the undo step that leaves the hook inert.
"""

from . import wrappers

UNMATCHED_DETAIL = " (no audit event of that name was raised)"
"""What the exit report adds to an audit target that matched nothing."""


def install(targets, undo):
    """Start reporting the audit events ``targets`` name; ``undo`` gets the step that stops it."""
    audit_targets = targets.audit_targets
    if not audit_targets:
        return
    # imported only for a run with audit targets: its event table stays out of every other start-up
    from hookwise import audit

    audit.start(audit_targets, transparent_codes=(wrappers.WRAPPER_CODE,))
    undo.append(audit.stop)
