# Celery's "Application" guide: a module that starts its own worker (python app.py). The main
# name is given (the guide's "Main Name" section) so tasks are "app.add" when run as __main__.
from canvas import Celery

app = Celery("app")
app.config_from_object("celeryconfig")


@app.task
def add(x, y):
    return x + y


if __name__ == "__main__":
    args = ["worker", "--loglevel=INFO"]
    app.worker_main(argv=args)
