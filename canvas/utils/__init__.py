"""Helpers under Celery's ``celery.utils`` import paths (``canvas.utils.log``)."""
