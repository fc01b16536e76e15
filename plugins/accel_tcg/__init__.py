"""The tcg accelerator plugin (registered through the accel.plugins entry point)."""
