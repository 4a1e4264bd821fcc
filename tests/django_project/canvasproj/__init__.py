"""A Django project laid out as the seed's Django section says, with canvas for Celery."""

from .celery import app as celery_app

__all__ = ["celery_app"]
