from myproject.celery import app


@app.task
def expand_abbreviations(article_id):
    return f"expanded {article_id}"
