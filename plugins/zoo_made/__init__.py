"""Placeholder: the made family plugin is being written."""
