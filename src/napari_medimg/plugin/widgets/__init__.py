"""Dock widgets: thin adapters over core functions."""
