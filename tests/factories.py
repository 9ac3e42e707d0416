"""factory-boy factories that keep the domain's invariants: a job's creator belongs to the
job's tenant."""

import factory

from accounts.models import User
from jobs.models import Job, JobStatus

PASSWORD = "correct-horse-battery"


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


class JobFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Job

    tenant = None
    created_by = factory.LazyAttribute(
        lambda job: UserFactory(tenant=job.tenant) if job.tenant else None
    )
    type = "demo.echo"
    status = JobStatus.PENDING
    payload = factory.LazyFunction(dict)
