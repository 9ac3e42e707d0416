"""factory-boy factories that keep the domain's invariants: a job's creator belongs to the
job's tenant.

``JobFactory`` traits put a job in each state the services distinguish, with the fields a
real job in that state has (times relative to the test's clock, far enough from it that
PostgreSQL's ``now()`` inside the test's transaction sees the same thing):
``pending`` (due), ``scheduled`` (pending, due tomorrow), ``processing`` (owned by
``WORKER_ID``, lease valid), ``cancelling`` (processing, cancellation requested),
``expired_lease`` (processing, lease expired an hour ago), ``timed_out`` (processing,
started a day ago), ``completed``, ``failed`` (attempts used up), ``cancelled``.
"""

from datetime import timedelta

import factory
from django.utils import timezone

from accounts.models import User
from jobs.models import Job, JobStatus

PASSWORD = "correct-horse-battery"
WORKER_ID = "worker-1"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = User
        django_get_or_create = ("username",)
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}")
    tenant = None
    password = factory.PostGenerationMethodCall("set_password", PASSWORD)

    @classmethod
    def _after_postgeneration(cls, instance, create, results=None):
        if create:
            instance.save(update_fields=["password"])


def _ago(**delta):
    return factory.LazyFunction(lambda: timezone.now() - timedelta(**delta))


def _from_now(**delta):
    return factory.LazyFunction(lambda: timezone.now() + timedelta(**delta))


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    class Params:
        pending = factory.Trait(
            status=JobStatus.PENDING, created_at=_ago(minutes=1), run_at=_ago(minutes=1)
        )
        scheduled = factory.Trait(status=JobStatus.PENDING, run_at=_from_now(days=1))
        processing = factory.Trait(
            status=JobStatus.PROCESSING,
            worker_id=WORKER_ID,
            attempts=1,
            created_at=_ago(minutes=2),
            run_at=_ago(minutes=2),
            started_at=_ago(minutes=1),
            lease_expires_at=_from_now(hours=1),
            progress=10,
            progress_message="working",
        )
        cancelling = factory.Trait(processing=True, cancel_requested=True)
        expired_lease = factory.Trait(processing=True, lease_expires_at=_ago(hours=1))
        timed_out = factory.Trait(processing=True, started_at=_ago(days=1))
        completed = factory.Trait(
            status=JobStatus.COMPLETED,
            attempts=1,
            created_at=_ago(minutes=3),
            run_at=_ago(minutes=3),
            started_at=_ago(minutes=2),
            completed_at=_ago(minutes=1),
            progress=100,
            result=factory.LazyFunction(lambda: {"done": True}),
        )
        failed = factory.Trait(
            status=JobStatus.FAILED,
            attempts=1,
            max_attempts=1,
            created_at=_ago(minutes=3),
            run_at=_ago(minutes=3),
            started_at=_ago(minutes=2),
            completed_at=_ago(minutes=1),
            error="demo failure",
            error_traceback="Traceback (most recent call last):\nJobError: demo failure",
        )
        cancelled = factory.Trait(
            status=JobStatus.CANCELLED,
            created_at=_ago(minutes=2),
            run_at=_ago(minutes=2),
            completed_at=_ago(minutes=1),
        )

    tenant = None
    created_by = factory.LazyAttribute(
        lambda job: UserFactory(tenant=job.tenant) if job.tenant else None
    )
    type = "demo.echo"
    status = JobStatus.PENDING
    payload = factory.LazyFunction(dict)
