"""The conformance suite on this host's accelerators (``pytest --accel kvm,tcg,xen``).

With the accel pytest plugin loaded, every test below runs once per selected
accelerator (default: the available ones); an unavailable one named in ``--accel`` is
reported skipped with its reason.
"""

from accel.testing.suite import *  # noqa: F403 - the suite's tests, collected here
