"""Metrics and structured logs: imported by every layer, importing none of them."""
