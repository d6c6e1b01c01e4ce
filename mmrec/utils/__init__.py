"""Small shared helpers: device, seeds, atomic I/O, config dataclasses, progress."""
