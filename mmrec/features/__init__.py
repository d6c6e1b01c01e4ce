"""Pure feature-extraction maths (no I/O, no parameters)."""
