"""The Celery worker: ``worker.tasks`` runs jobs (importing TensorFlow inside the worker's job processes),
``worker.cli`` is ``esrgan worker``. Records, queue and storage are the job domain's (``jobs``)."""
