# Celery's "Tasks" guide habits: a custom base class with handlers, a bound task that retries,
# a class-based task, @shared_task, the task logger and current_task. Imports swapped only.
from canvas import Celery, Task, current_task, shared_task
from canvas.exceptions import Ignore
from canvas.utils.log import get_task_logger

logger = get_task_logger(__name__)

app = Celery("tasks")
app.config_from_object("celeryconfig")


class Audited(app.Task):
    acks_late = True
    max_retries = 1
    default_retry_delay = 0

    def before_start(self, task_id, args, kwargs):
        logger.info("before_start %s %r %r", task_id, args, kwargs)

    def on_success(self, retval, task_id, args, kwargs):
        logger.info("on_success %r %s %r %r", retval, task_id, args, kwargs)

    def on_failure(self, exc, task_id, args, kwargs, einfo):
        logger.info("on_failure %r %s %r %s", exc, task_id, args, einfo.type.__name__)

    def on_retry(self, exc, task_id, args, kwargs, einfo):
        logger.info("on_retry %r %s", exc, task_id)

    def after_return(self, status, retval, task_id, args, kwargs, einfo):
        logger.info("after_return %s %r %s", status, retval, task_id)


@app.task(base=Audited)
def add(x, y):
    logger.info("adding %s + %s in %s", x, y, current_task.name)
    return x + y


@app.task(base=Audited)
def fail(message):
    raise ValueError(message)


@app.task(base=Audited, bind=True)
def flaky(self):
    if self.request.retries == 0:
        raise self.retry(exc=KeyError("first try"))
    return self.request.retries


@app.task(base=Audited)
def skipped():
    raise Ignore()


class Multiply(Task):
    name = "tasks.multiply"

    def run(self, x, y):
        return x * y


multiply = app.register_task(Multiply())


@shared_task
def shout(word):
    return word.upper()
