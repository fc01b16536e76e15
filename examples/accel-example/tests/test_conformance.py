"""accel's conformance suite on the example accelerator.

With accel installed, its pytest plugin is loaded automatically; ``pytest --accel
example`` runs every check below on this accelerator.
"""

from accel.testing.suite import *  # noqa: F403
