"""The peer's one endpoint (its URL conf too)."""

from django.urls import path
from rest_framework import generics, serializers

from .models import Job


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        exclude = ["tenant_id"]


class JobDetail(generics.RetrieveAPIView):
    serializer_class = JobSerializer

    def get_queryset(self):
        return Job.objects.filter(tenant_id=self.request.user.tenant_id)


urlpatterns = [path("api/jobs/<uuid:pk>", JobDetail.as_view())]
