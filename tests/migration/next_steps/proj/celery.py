# Celery's "Next steps" layout: proj/celery.py makes the app, proj/tasks.py holds the tasks.
# Imports swapped only (the guide's broker and backend live in celeryconfig here).
from canvas import Celery

app = Celery("proj", include=["proj.tasks"])
app.config_from_object("celeryconfig")

# Optional configuration, see the application user guide.
app.conf.update(
    result_expires=3600,
)

if __name__ == "__main__":
    app.start()
