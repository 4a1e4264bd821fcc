# Celery's task options as its "Tasks" guide shows them; imports swapped only.
import time

from canvas import Celery, Task

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.task(rate_limit="5/s")
def limited(n):
    return time.time()


@app.task
def free(n):
    return time.time()


class ShortLived(Task):
    expires = 0.5  # seconds: a call still queued after that is revoked, not run


@app.task(base=ShortLived)
def perishable():
    return "ran"


@app.task
def slow():
    time.sleep(1.5)
    return "slow"


@app.task(bind=True)
def who_am_i(self):
    return self.request.task


class Shadowed(Task):
    def shadow_name(self, args, kwargs, options):
        return f"report:{args[0]}"


@app.task(base=Shadowed)
def report(kind):
    return kind


@app.task(acks_late=True, acks_on_failure_or_timeout=False)
def keep_on_failure():
    raise ValueError("to the dead-letter queue")
