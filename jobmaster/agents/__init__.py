"""Agents: the transports that carry due jobs from producers to workers.

``resolve_agent(url)`` picks the backend by URL scheme, among the built-in agents and then
the ``jobmaster.agents`` entry points of installed packages, and imports it lazily.
"""

from jobmaster.agents import base as _base
from jobmaster.agents.base import (
    Agent,
    AgentMessage,
    Bucket,
    Capabilities,
    Claimed,
    DeadLetter,
    agent_class,
    resolve_agent,
)

# RabbitMQ: ``amqp://`` and ``amqps://`` (the ``amqp`` extra installs pika)
for _scheme in ("amqp", "amqps"):
    _base._BACKENDS.setdefault(_scheme, "jobmaster.agents.rabbitmq:RabbitMQAgent")
_base._EXTRAS.setdefault("rabbitmq", "amqp")

__all__ = [
    "Agent",
    "AgentMessage",
    "Bucket",
    "Capabilities",
    "Claimed",
    "DeadLetter",
    "agent_class",
    "resolve_agent",
]
