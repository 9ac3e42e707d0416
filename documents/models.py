"""A tenant's business data (TENANT_APPS): lives in each tenant's own schema.

Job handlers write here inside ``tenant_context(job.tenant)``, so each tenant's
documents land in its own schema.
"""

import uuid

from django.db import models


class Document(models.Model):
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    title = models.CharField(max_length=200)
    body = models.TextField(blank=True, default="")
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.title
