from django.urls import path
from rest_framework.routers import SimpleRouter

from jobs.api.realtime.events import JobEventsView, TenantEventsView
from jobs.api.views import JobViewSet, MeView

router = SimpleRouter(trailing_slash=False)
router.register("jobs", JobViewSet, basename="job")

urlpatterns = [
    path("events", TenantEventsView.as_view(), name="events"),
    path("me", MeView.as_view(), name="me"),
    path("jobs/<str:pk>/events", JobEventsView.as_view(), name="job-events"),
    *router.urls,
]
