# Celery's "Message Signing" guide (docs/userguide/security.rst), with the import swapped
# (celery -> canvas) and nothing else. As in the tutorial, celeryconfig holds the broker and the
# paths: security_key, security_certificate, security_cert_store and security_digest.
from canvas import Celery

app = Celery("tasks")
app.config_from_object("celeryconfig")
app.conf.update(
    task_serializer="auth",
    event_serializer="auth",
    accept_content=["auth"],
    result_accept_content=["json"],
)
app.setup_security()


@app.task
def add(x, y):
    return x + y
