"""Helpers shared by tests in several folders (and by their subprocess workers)."""
