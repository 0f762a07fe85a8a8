"""An order, confirmed by a job once the request that created it has committed."""

from django.db import models


class Order(models.Model):
    """One order; ``confirmed_at`` is set by the ``shop.confirm-order`` job."""

    item = models.CharField(max_length=100)
    quantity = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(auto_now_add=True)
    confirmed_at = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return f"order {self.pk}: {self.quantity} x {self.item}"
