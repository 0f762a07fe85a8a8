"""Test helpers for projects that extend jobmaster.

``jobmaster.testing.agent_conformance`` holds the agent conformance suite: the contract
every agent backend keeps, as a pytest test class to subclass in your own tests (see
``docs/agents.md``). Importing this package needs nothing beyond jobmaster; the suite
itself needs pytest.
"""

from __future__ import annotations

try:  # let pytest show the values behind a failed ``assert`` of the suite
    import pytest
except ImportError:  # pragma: no cover - pytest is only needed to run the suite
    pass
else:
    pytest.register_assert_rewrite("jobmaster.testing.agent_conformance")
