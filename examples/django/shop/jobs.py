"""The shop's jobs, imported by the jobmaster Django app when Django is ready
(``jobs.py`` autodiscovery); module-level ``@jobmaster.job`` uses the project's app."""

from django.utils import timezone

import jobmaster
from shop.models import Order


@jobmaster.job(definition_id="shop.confirm-order")
def confirm_order(order_id: int) -> str:
    """Mark the order confirmed. It reads the order the request committed: enqueued with
    ``delay_on_commit``, the job never runs before (or without) that commit."""
    order = Order.objects.get(pk=order_id)
    order.confirmed_at = timezone.now()
    order.save(update_fields=["confirmed_at"])
    return f"order {order.pk} confirmed"
