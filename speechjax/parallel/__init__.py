"""Mesh construction, logical-axis rules, host↔global arrays, multi-host init."""
