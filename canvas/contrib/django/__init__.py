"""Canvas for Django projects: one app for results, workflows and periodic tasks in the database.

Add ``"canvas.contrib.django"`` to ``INSTALLED_APPS``, run ``python manage.py migrate``, and:

* ``result_backend = "django-db"`` keeps results in the app's models (``TaskResult``,
  ``GroupResult``, ``Workflow``), browsable in the admin; see ``canvas.contrib.django.store``;
* ``canvas beat -S canvas.contrib.django.schedulers:DatabaseScheduler`` (or the django-celery-beat
  spelling) fires the ``PeriodicTask`` rows that staff edit in the admin;
* a worker or beat with ``DJANGO_SETTINGS_MODULE`` set calls ``django.setup()`` first and closes
  stale database connections around each task (``canvas.contrib.django.fixup``).

The models keep django-celery-results' and django-celery-beat's names, fields and constants, so
code written for those packages changes by its imports only. Nothing here is imported by canvas
itself unless a project uses Django.
"""
