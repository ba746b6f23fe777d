"""Cluster metadata: the read side (an immutable image) and the write side (a controller)."""
