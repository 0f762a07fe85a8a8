"""URLs of the example shop."""

from django.urls import path
from shop import views

urlpatterns = [
    path("orders/", views.orders),
    path("orders/<int:pk>/", views.order_detail),
    path("jobs/", views.jobs),
]
