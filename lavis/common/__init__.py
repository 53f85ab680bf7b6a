"""Shared infrastructure: registry, config, distributed helpers, logging, checkpoint I/O."""
