"""Backends, registered by name in workers.base and imported only when selected."""
