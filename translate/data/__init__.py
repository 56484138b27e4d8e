"""Datasets, transforms, masks and degradations."""
