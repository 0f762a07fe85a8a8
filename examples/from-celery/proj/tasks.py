from .celery import app


@app.job
def add(x, y):
    return x + y


@app.job
def mul(x, y):
    return x * y


@app.job
def xsum(numbers):
    return sum(numbers)
