from django.db import models


class Article(models.Model):
    """The seed's example model."""

    title = models.CharField(max_length=200)
    body = models.TextField()
