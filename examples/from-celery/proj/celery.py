from jobmaster import App as Celery

app = Celery('proj',
             include=['proj.tasks'],
             # Optional configuration, see docs/configuration.md.
             retention=3600)
