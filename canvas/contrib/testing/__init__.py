"""Testing helpers under Celery's ``celery.contrib.testing`` paths.

``canvas.contrib.testing.worker.start_worker(app)``: a real worker inside the test process;
``canvas.contrib.testing.app.TestApp()``: an app on the in-process transport and store.
"""
