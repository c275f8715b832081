"""scanner: genome-scale TF motif scanning, binding prediction and interpretation on Ray.

Importing the package is cheap: torch, ray and numba are imported only by the modules that need them.
"""

__version__ = "0.1.0"
