"""Glue between jobmaster and web frameworks, each in its own module and imported only
when used: ``jobmaster.contrib.django`` (a Django app), ``jobmaster.contrib.starlette`` and
``jobmaster.contrib.fastapi`` (lifespan and dependency), ``jobmaster.contrib.flask`` (an
extension). Importing ``jobmaster`` imports none of them, nor their frameworks."""
