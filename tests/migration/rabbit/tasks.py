# A project moving from Celery on RabbitMQ: its queue already exists, declared by Celery.
from canvas import Celery
from canvas.exceptions import Reject

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.task
def add(x, y):
    return x + y


@app.task(acks_late=True)
def refuse():
    raise Reject("not for us", requeue=False)
