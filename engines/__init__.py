"""Unisight engines: the network, its training, export and inference backends.

Nothing under `engines/` imports `app/` or `ui/`; dependencies point one way.
"""
