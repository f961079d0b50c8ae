"""Placeholder: the pixelcnn family plugin is being written."""
