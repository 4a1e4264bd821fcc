"""Integrations with other frameworks; each subpackage needs its framework installed."""
