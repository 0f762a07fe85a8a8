"""Workers: a supervisor claiming jobs from an agent and a pool executing them."""

from jobmaster.worker.supervisor import Worker

__all__ = ["Worker"]
