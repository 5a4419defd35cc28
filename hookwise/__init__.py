"""hookwise: run any Python program with hooks on the functions you name.

What users touch: the ``Call`` record, the ``Listener`` interface, the
``Blocked`` exception, targets and settings. What instrumented code calls:
``hookwise.runtime``. The import machinery lives in the top-level ``loader``
package and the AST rewrite in ``rewriter``; ``hookwise.cli`` runs programs (the
``hookwise`` command, ``python -m hookwise``, the checkout's ``driver.py``).
"""

from .call import Call, Caller
from .listener import Blocked, Listener

__version__ = "0.1.0"

__all__ = ["Blocked", "Call", "Caller", "Listener", "__version__"]
