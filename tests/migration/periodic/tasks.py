# Celery's "Periodic Tasks" guide: entries added once the app is configured. Imports swapped.
from canvas import Celery
from canvas.schedules import crontab

app = Celery("tasks")
app.config_from_object("celeryconfig")


@app.on_after_configure.connect
def setup_periodic_tasks(sender: Celery, **kwargs):
    # Calls test('hello') every second (the guide says 10; a test has no time to wait).
    sender.add_periodic_task(1.0, test.s("hello"), name="add every 1")

    # Executes every Monday morning at 7:30 a.m.
    sender.add_periodic_task(
        crontab(hour=7, minute=30, day_of_week=1),
        test.s("Happy Mondays!"),
    )


@app.task
def test(arg):
    print(arg)
