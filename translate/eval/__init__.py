"""Evaluation: metrics and the reference feature networks."""
