"""Import machinery: the finder and source loader, the bytecode cache,
attribute replacement, and the runner that executes the program as __main__.

Dependencies point one way: ``driver`` -> ``loader`` -> ``rewriter`` -> ``hookwise``.
"""

from .install import Installation
from .patch import PatchError

__all__ = ["Installation", "PatchError"]
