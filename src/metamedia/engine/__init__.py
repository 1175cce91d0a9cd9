"""Numeric core: arrays in, arrays out. No files, sockets or SQL here.

The one exception is `embed`, which loads model weights shipped inside a
Python package; it never reaches the network.
"""
