# Celery's "First steps" tutorial with its result backend, rpc:// (results sent back to the caller
# as messages), the import swapped (celery -> canvas) and nothing else. A few tasks more: one that
# fails, one that takes a while, and a sum for workflows.
import os
import time

from canvas import Celery

app = Celery("tasks", backend="rpc://")
app.config_from_object("celeryconfig")


@app.task
def add(x, y):
    return x + y


@app.task
def fail(message):
    raise ValueError(message)


@app.task
def slow_add(x, y, seconds):
    time.sleep(seconds)
    return x + y


@app.task
def tsum(numbers):
    return sum(numbers)


@app.task(bind=True)
def report_progress(self, seconds):
    self.update_state(state="PROGRESS", meta={"done": 1})
    time.sleep(seconds)
    return "finished"


@app.task
def exit_process():
    os._exit(3)  # the process dies without a word: its supervisor records the loss
