"""The agent conformance suite (``jobmaster.testing.agent_conformance``) run against every
backend of the project, the way a third-party agent runs it."""

from __future__ import annotations

import pytest

from jobmaster.agents import resolve_agent
from jobmaster.testing.agent_conformance import AgentConformance, AgentFactory, MalformedStore
from tests.agent_backends import AGENT_BACKENDS, STORE_MALFORMED


class TestAgentConformance(AgentConformance):
    """Every built-in agent keeps the contract."""

    @pytest.fixture(params=sorted(AGENT_BACKENDS))
    def backend(self, request: pytest.FixtureRequest) -> str:
        return str(request.param)

    @pytest.fixture
    def make_agent(self, backend: str) -> AgentFactory:
        url = AGENT_BACKENDS[backend]()
        return lambda namespace: resolve_agent(url, name="conformance", namespace=namespace)

    @pytest.fixture
    def store_malformed(self, backend: str) -> MalformedStore | None:
        return STORE_MALFORMED.get(backend)
