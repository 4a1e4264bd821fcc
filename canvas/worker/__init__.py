"""Celery's ``celery.worker`` import paths; the worker itself is ``canvas.core.worker``."""
