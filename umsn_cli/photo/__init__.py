"""Whole photos: face detection, alignment, restoration and seamless pasting."""
