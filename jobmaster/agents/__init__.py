"""Agents: the transports that carry due jobs from producers to workers.

``resolve_agent(url)`` picks the backend by URL scheme, among the built-in agents and then
the ``jobmaster.agents`` entry points of installed packages, and imports it lazily.
"""

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
