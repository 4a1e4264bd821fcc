# Celery's "First steps" tutorial, with the import swapped (celery -> canvas) and nothing else.
from canvas import Celery

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.task
def add(x, y):
    return x + y
