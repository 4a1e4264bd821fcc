# Everyday worker habits: print() in a task, pids per pool process, a task past its soft time
# limit, two queues from task_queues. Imports swapped only.
import os
import time

from canvas import Celery
from canvas.exceptions import SoftTimeLimitExceeded

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.task
def pid():
    return os.getpid()


@app.task
def chatty(word):
    print(f"chatty says {word}")
    return word


@app.task
def overtime():
    try:
        time.sleep(10)
    except SoftTimeLimitExceeded:
        return "cleaned up"
    return "slept"


@app.task(queue="hipri")
def urgent():
    return "urgent"
