"""The job queue: the Celery application (Redis broker) that the API sends to and the workers consume,
with the settings that make sure no job is lost.

- late acknowledgement + prefetch 1: a message is removed from Redis only after its job ended, and a
  worker holds at most the job it is running;
- reject_on_worker_lost: a job whose process died goes back to the queue (the attempt counter in the job
  record stops a job that kills its worker every time);
- visibility timeout longer than the hard time limit: a job still running is never handed out twice,
  while the job of a worker that vanished entirely comes back after that timeout;
- soft time limit (the job stops and is reported) then a hard one (the process is killed).
No result backend: the job record in Redis is the result. This module does not import TensorFlow.
"""
from __future__ import annotations

from celery import Celery
from kombu import Queue

from .records import redis_url
from .settings import Settings, get_settings

TASK_NAME = "esrgan.run_job"
WEBHOOK_TASK = "esrgan.deliver_webhook"
QUEUES = ("default", "gpu")


def make_celery(settings: Settings | None = None) -> Celery:
    settings = settings or get_settings()
    app = Celery("esrgan", broker=redis_url(settings))
    queues = dict.fromkeys((*QUEUES, settings.queue))
    app.conf.update(
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        task_acks_on_failure_or_timeout=True,
        worker_prefetch_multiplier=1,
        # A job process loads TensorFlow and the models before it reports up; Celery's default (4 s)
        # would kill it over and over once a job process had to be replaced.
        worker_proc_alive_timeout=settings.worker_start_timeout,
        task_ignore_result=True,
        task_store_errors_even_if_ignored=False,
        task_soft_time_limit=settings.job_time_limit,
        task_time_limit=settings.hard_time_limit,
        task_default_queue=settings.queue,
        task_queues=[Queue(q, routing_key=q) for q in queues],
        task_serializer="json",
        accept_content=["json"],
        broker_transport_options={
            "visibility_timeout": settings.visibility_timeout,
            "unacked_restore_interval": settings.broker_restore_interval,
            "unacked_restore_throttle": 1,
            "socket_timeout": settings.redis_timeout,
            "socket_connect_timeout": settings.redis_timeout,
        },
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=None,  # keep reconnecting while Redis restarts
        task_publish_retry_policy={"max_retries": 2, "interval_start": 0, "interval_step": 0.5,
                                   "interval_max": 1},
        worker_hijack_root_logger=False,
        worker_send_task_events=False,
        worker_enable_remote_control=True,
        broker_heartbeat=0,
        timezone="UTC",
    )
    return app


def enqueue(app: Celery, job_id: str, queue: str) -> None:
    app.send_task(TASK_NAME, args=[job_id], queue=queue, routing_key=queue)


def queue_depth(client, queue: str) -> int:
    """Messages waiting in a queue (the Redis transport keeps them in a list named after the queue)."""
    return int(client.llen(queue))
