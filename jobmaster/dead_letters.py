"""``app.dead_letters``: list, show, requeue and purge the dead letters of an app's agents.

A dead letter is a message an agent moved aside with the reason it could not run (an
undecodable envelope, a definition no worker has, a record the master refused...).
Requeueing pushes the job back to the agent it was dead-lettered on as a fresh attempt with
a fresh retry budget, then removes the dead letter (``Agent`` documents why in that order:
a crash in between leaves the job queued *and* still dead-lettered, never lost). When the
master holds the job, the requeue goes through its record, like ``app.jobs.retry``: status
back to ``queued``, attempts and error history kept.
"""

from __future__ import annotations

import builtins
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol

from jobmaster.agents.base import Agent, DeadLetter
from jobmaster.envelope import Envelope, EnvelopeError
from jobmaster.exceptions import JobmasterError
from jobmaster.host import AppResources
from jobmaster.master.timestamps import from_timestamp

if TYPE_CHECKING:
    from jobmaster.producer import Producer


class DeadLettersHost(AppResources, Protocol):
    """What ``app.dead_letters`` needs from its app."""

    @property
    def producer(self) -> Producer: ...

PAGE = 500
"""Dead letters read per agent round trip while filtering."""


@dataclass(frozen=True, slots=True)
class DeadLetterItem:
    """One dead letter of an app: which agent holds it, and what the envelope in it says
    (``definition_id`` is ``None`` when its body is not a jobmaster envelope)."""

    agent: str
    letter: DeadLetter
    definition_id: str | None

    @property
    def id(self) -> str:
        """The job (message) id."""
        return self.letter.message.id

    @property
    def reason(self) -> str:
        return self.letter.reason

    @property
    def at(self) -> float:
        """When it was dead-lettered (Unix timestamp)."""
        return self.letter.at

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready view (the body is not included)."""
        m = self.letter.message
        return {
            "id": m.id, "agent": self.agent, "definition_id": self.definition_id,
            "lane": m.lane, "priority": m.priority, "reason": self.reason, "at": self.at,
            "body_bytes": len(m.body),
        }


class RequeueResult(int):
    """How many jobs ``requeue`` pushed back (an ``int``), with ``errors``: per job id,
    why it was not."""

    errors: dict[str, str]

    def __new__(cls, requeued: int, errors: dict[str, str]) -> RequeueResult:
        self = super().__new__(cls, requeued)
        self.errors = errors
        return self


def _definition(letter: DeadLetter) -> str | None:
    try:
        return Envelope.from_bytes(letter.message.body).definition_id
    except EnvelopeError:
        return None


class DeadLettersAPI:
    """The dead letters of every agent of one app."""

    def __init__(self, app: DeadLettersHost) -> None:
        self._app = app

    def _agents(self, agent: str | None) -> list[tuple[str, Agent]]:
        names = [agent] if agent is not None else sorted(self._app.config.agents)
        return [(name, self._app.agent(name)) for name in names]

    def _scan(self, agent: str | None) -> Iterator[DeadLetterItem]:
        for name, backend in self._agents(agent):
            before: DeadLetter | None = None
            while True:
                page = backend.dead_letters(PAGE, before=before)
                for letter in page:
                    yield DeadLetterItem(name, letter, _definition(letter))
                if len(page) < PAGE:
                    break
                before = page[-1]

    def list(
        self,
        agent: str | None = None,
        definition_id: str | None = None,
        reason: str | None = None,
        limit: int | None = 100,
    ) -> list[DeadLetterItem]:
        """Dead letters of the app's agents (or of one), newest first within each agent,
        filtered by definition id and by a substring of the reason; at most ``limit``
        (``None``: all)."""
        out: list[DeadLetterItem] = []
        for item in self._scan(agent):
            if definition_id is not None and item.definition_id != definition_id:
                continue
            if reason is not None and reason.lower() not in item.reason.lower():
                continue
            out.append(item)
            if limit is not None and len(out) >= limit:
                break
        out.sort(key=lambda i: -i.at)
        return out

    def get(self, job_id: str) -> DeadLetterItem:
        """The newest dead letter of a job id, in any agent; ``JobmasterError`` if none."""
        found = [
            DeadLetterItem(name, letter, _definition(letter))
            for name, backend in self._agents(None)
            for letter in backend.find_dead_letters([job_id])
        ]
        if not found:
            raise JobmasterError(f"no dead letter for job {job_id!r} in the agents of "
                                 f"cluster {self._app.name!r}")
        return max(found, key=lambda i: i.at)

    def _select(self, ids: Sequence[str] | None, agent: str | None,
                definition_id: str | None, reason: str | None) -> builtins.list[DeadLetterItem]:
        if ids is None:
            return self.list(agent=agent, definition_id=definition_id, reason=reason,
                             limit=None)
        items = [
            DeadLetterItem(name, letter, _definition(letter))
            for name, backend in self._agents(agent)
            for letter in backend.find_dead_letters(list(ids))
        ]
        return [i for i in items
                if (definition_id is None or i.definition_id == definition_id)
                and (reason is None or reason.lower() in i.reason.lower())]

    def requeue(
        self,
        ids: Sequence[str] | None = None,
        *,
        agent: str | None = None,
        definition_id: str | None = None,
        reason: str | None = None,
    ) -> RequeueResult:
        """Push dead-lettered jobs back to their agents as fresh attempts (the ones with
        these ids, or every one the filters select) and remove their dead letters. Returns
        how many went back (``int(result)``) and, per id, why one could not (a body that is
        not a jobmaster envelope, a job the master no longer holds...); the others go on."""
        items = self._select(ids, agent, definition_id, reason)
        errors: dict[str, str] = {}
        if ids is not None:
            found = {i.id for i in items}
            errors.update({i: "no such dead letter" for i in ids if i not in found})
        done = 0
        by_agent: dict[str, list[tuple[DeadLetterItem, Envelope]]] = {}
        now = time.time()
        for item in items:
            try:
                env = self._fresh(item, now)
            except (EnvelopeError, JobmasterError) as exc:
                errors[item.id] = str(exc)
                continue
            by_agent.setdefault(item.agent, []).append((item, env))
        for name, group in by_agent.items():
            backend = self._app.agent(name)
            # push first, then remove
            backend.push(self._app.producer.messages(env for _, env in group))
            gone = backend.remove_dead_letters([item.letter for item, _ in group])
            done += len(gone)
        return RequeueResult(done, errors)

    def _fresh(self, item: DeadLetterItem, now: float) -> Envelope:
        """The envelope that runs a dead-lettered job again: through the master record
        when the master holds the job, else the dead letter's own envelope, due now, as
        attempt 1."""
        try:
            env = Envelope.from_bytes(item.letter.message.body)
        except EnvelopeError as exc:
            raise EnvelopeError(f"cannot be requeued: its body is {exc}") from None
        master = self._app.master
        if master.get_job(env.id) is not None:
            from jobmaster.master.rows import envelope_from_row  # with the master, on use

            row = master.requeue_job(env.id, due=from_timestamp(now),  # type: ignore[arg-type]
                                     reason="requeued from the dead letters")
            if row is not None:
                env = envelope_from_row(row)
        else:
            env = replace(env, attempt=1, due=now)
        # back to the agent that dead-lettered it, in the bucket it came from
        return replace(env, options=replace(env.options, agent=item.agent))

    def purge(
        self,
        ids: Sequence[str] | None = None,
        *,
        before: float | None = None,
        agent: str | None = None,
    ) -> int:
        """Delete dead letters: those of these job ids, or every one (dead-lettered before
        ``before``, a Unix timestamp, if given) of the app's agents or of one. Returns
        how many."""
        count = 0
        for _, backend in self._agents(agent):
            if ids is None:
                count += backend.purge_dead_letters(before=before)
                continue
            letters = backend.find_dead_letters(list(ids))
            if before is not None:
                letters = [d for d in letters if d.at < before]
            count += len(backend.remove_dead_letters(letters))
        return count
