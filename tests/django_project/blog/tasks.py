"""Tasks of the test project: the seed's expand_abbreviations, and small ones for workflows."""

from canvasproj.celery import app

from blog.models import Article  # a model import at the top: needs django.setup() first


@app.task
def expand_abbreviations(article_id):
    # The seed's advice: pass the id, fetch the row when the task runs.
    article = Article.objects.get(id=article_id)
    article.body = article.body.replace("MyCorp", "My Corporation")
    article.save()
    return article.body


@app.task
def num(n):
    return n


@app.task
def total(numbers):
    return sum(numbers)


@app.task
def fail(message):
    raise ValueError(message)
