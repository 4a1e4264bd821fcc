# Celery's "resultgraph" habit: tasks that return the handles of what they sent, followed with
# collect(); imports swapped only.
from canvas import Celery, group

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.task(trail=True)
def A(how_many):
    return group(B.s(i) for i in range(how_many))()


@app.task(trail=True)
def B(i):
    return pow2.delay(i)


@app.task(trail=True)
def pow2(i):
    return i**2
