"""Revision scripts; modules named vNNNN_* so they can be imported like any module."""
