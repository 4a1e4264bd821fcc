from .celery import app as celery_app  # noqa: F401 - the seed's layout: myproject/celery.py

__all__ = ["celery_app"]
