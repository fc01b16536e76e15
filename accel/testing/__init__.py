"""The conformance suite and its guest programs."""
