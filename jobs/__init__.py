"""The job domain, shared by the API (``api/``) and the workers (``worker/``), importing neither:

- ``jobs.settings``: ``Settings`` / ``get_settings()``, the service settings (engine settings + Redis,
  storage, queues, keys, limits);
- ``jobs.records``: ``Job`` and ``JobStore``, the job records in Redis (status, progress, options);
- ``jobs.queue``: the Celery application both sides use (``make_celery``, ``enqueue``);
- ``jobs.storage``: ``Storage`` with its errors (file:// here, s3:// in ``jobs.s3``);
  ``jobs.backends.open_storage(settings)`` opens the one ``ESRGAN_STORAGE_URL`` names.

A job's options are ``model.options.JobOptions`` (the engine's module, TensorFlow-free).
Nothing here imports TensorFlow or FastAPI.
"""
