"""Registered video and text processors (``registry.get("processor", name)``)."""
