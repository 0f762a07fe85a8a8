"""URLs of the example shop."""

from django.urls import path
from shop import views

from jobmaster.contrib.django.dashboard import dashboard_urls

urlpatterns = [
    path("orders/", views.orders),
    path("orders/<int:pk>/", views.order_detail),
    path("jobs/", views.jobs),
    # the jobs dashboard; staff users only by default: this example, which has no users,
    # lets in requests from this machine instead
    path("ops/jobs/", dashboard_urls(allow=lambda request: request.META.get("REMOTE_ADDR")
                                     == "127.0.0.1")),
]
