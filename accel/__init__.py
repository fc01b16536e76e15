"""accel: virtualization accelerators behind one plugin interface."""
