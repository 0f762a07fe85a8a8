"""Views: create an order and enqueue its confirmation when the transaction commits."""

from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from jobmaster.contrib.django import delay_on_commit, get_app
from shop.jobs import confirm_order
from shop.models import Order


class OutOfStock(Exception):
    """Raised inside the transaction to roll the order back."""


@csrf_exempt
def orders(request: HttpRequest) -> HttpResponse:
    """``POST item=...&quantity=...``: create an order and confirm it in a job once the
    transaction commits; ``out_of_stock=1`` fails after the enqueue call, the transaction
    rolls back and no job is enqueued. ``GET``: every order."""
    if request.method != "POST":
        return JsonResponse({"orders": [_order(o) for o in Order.objects.order_by("pk")]})
    try:
        with transaction.atomic():
            order = Order.objects.create(item=request.POST.get("item", "widget"),
                                         quantity=int(request.POST.get("quantity", "1")))
            delay_on_commit(confirm_order, order_id=order.pk)
            if request.POST.get("out_of_stock") == "1":
                raise OutOfStock(order.item)
    except OutOfStock:
        return JsonResponse({"error": "out of stock", "rolled_back": True}, status=409)
    return JsonResponse(_order(order), status=201)


def order_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """One order."""
    try:
        return JsonResponse(_order(Order.objects.get(pk=pk)))
    except Order.DoesNotExist:
        raise Http404(f"no order {pk}") from None


def jobs(request: HttpRequest) -> HttpResponse:
    """The jobs the master holds for ``?definition=ID`` (all when not given)."""
    definition = request.GET.get("definition") or None
    page = get_app().jobs.list(definition_id=definition, limit=100)
    return JsonResponse({"jobs": [
        {"id": job.id, "definition": job.definition_id, "status": str(job.status),
         "kwargs": job.kwargs, "result": job.result}
        for job in page]})


def _order(order: Order) -> dict[str, object]:
    return {"id": order.pk, "item": order.item, "quantity": order.quantity,
            "confirmed": order.confirmed_at is not None}
