"""Celery glue between the job records/storage and the model library's inference engine.

``worker.jobs`` (records), ``worker.storage`` (files) and ``worker.celery_app`` (the queue) are light and
shared with the API; only ``worker.tasks`` runs models, importing TensorFlow inside the worker process.
"""
