"""Install hookwise.web for the ``web:request`` targets of a run (nothing when there are none).

The request model lives in the runtime (hookwise/web/); this hands it the
targets and puts its points (``hookwise.web.points.POINTS``) in place: at once
in the modules loaded already, and right after the import for the others (the
finder claims those modules for that alone: ``Installation.integrations``).
"""

import sys

from hookwise import report

UNMATCHED_DETAIL = " (no request was served by a WSGI or ASGI server or test client hookwise knows)"


def install(installation, undo):
    """Start reporting requests; ``undo`` gets the steps that stop it."""
    web_targets = installation.targets.web_targets
    if not web_targets:
        return
    # imported only for a run with web targets
    from hookwise import web
    from hookwise.web import points

    web.start(web_targets)
    undo.append(web.stop)
    installation.integrations = points.POINTS
    for name in points.POINTS:
        module = sys.modules.get(name)
        if module is not None:
            serve(installation, module, undo)


def serve(installation, module, undo):
    """Put the points of ``module`` in place (a failure is hookwise's: said once, never raised)."""
    install_points = installation.integrations.get(module.__name__)
    if install_points is None:
        return
    try:
        install_points(module, undo)
    except Exception as exc:
        report.warn_once(("web", module.__name__),
                         f"cannot see the requests served through {module.__name__!r}: {type(exc).__name__}: {exc}")
