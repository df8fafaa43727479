"""Test support shipped with the package: ground-truth signal generator and fault injectors."""
