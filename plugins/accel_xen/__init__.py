"""The xen accelerator plugin (registered through the accel.plugins entry point)."""
