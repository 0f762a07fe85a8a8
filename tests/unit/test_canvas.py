"""Workflows without I/O: signatures, how a canvas becomes jobs and what each waits for
(``plan``), what becomes of a waiting job given its parents (``decide``), and the input
refused before anything is stored."""

from __future__ import annotations

from typing import Any

import pytest

from jobmaster import App, ArgumentsError
from jobmaster.canvas import Signature, chain, chord, group, plan, signature
from jobmaster.master.workflows import Abandon, Parent, Release, Step, Wait, decide


@pytest.fixture(scope="module")
def app() -> App:
    app = App("canvas-unit", master="sqlite:////nonexistent/never-opened.db", default=False)

    @app.job(definition_id="add")
    def add(x: int, y: int) -> int:
        return x + y

    @app.job(definition_id="tsum")
    def tsum(values: list[int]) -> int:
        return sum(values)

    @app.job(definition_id="keywords")
    def keywords(*, x: int) -> int:
        return x

    return app


def defs(app: App, *names: str) -> list[Any]:
    return [app.definitions[n] for n in names]


# -- signatures ---------------------------------------------------------------------------
def test_signatures_hold_arguments_and_options(app: App) -> None:
    (add,) = defs(app, "add")
    sig = add.s(1, y=2)
    assert (sig.args, sig.kwargs, sig.immutable) == ((1,), {"y": 2}, False)
    assert repr(sig) == "add.s(1, y=2)" and repr(add.si(1, 2)) == "add.si(1, 2)"
    later = sig.set(countdown=5, queue="math")
    assert later.options == {"countdown": 5, "queue": "math"} and sig.options == {}
    assert sig.clone((9,)).args == (9, 1)
    assert add.s(2)(1) == 3  # runs here and now, given arguments first
    assert signature(add, args=(1,), immutable=True) == add.si(1)


@pytest.mark.parametrize(("options", "words"), [
    ({"job_key": "k"}, "job_key= is not a signature option"),
    ({"cluster": "other"}, "one cluster"),
    ({"countdown": 1, "after": 2}, "countdown= or after="),
])
def test_signature_options_refused(app: App, options: dict[str, Any], words: str) -> None:
    (add,) = defs(app, "add")
    with pytest.raises(ArgumentsError, match=words):
        add.s(1).set(**options)


def test_bad_canvases_are_refused_with_what_to_write(app: App) -> None:
    add, tsum = defs(app, "add", "tsum")
    with pytest.raises(ArgumentsError, match="empty chain"):
        chain()
    with pytest.raises(ArgumentsError, match="empty group"):
        group([])
    with pytest.raises(ArgumentsError, match=r"write job\.s\(\.\.\.\)"):
        chain(add.s(1, 2), add)
    with pytest.raises(ArgumentsError, match="holds signatures"):
        group([add.s(1, 1), 3])
    with pytest.raises(ArgumentsError, match="group inside a group"):
        group(group(add.s(1, 1)), add.s(2, 2))
    with pytest.raises(ArgumentsError, match="body of a chord"):
        chord([add.s(1, 1)], tsum)
    with pytest.raises(ArgumentsError, match="empty group"):
        chord([], tsum.s())
    with pytest.raises(ArgumentsError, match="link_error takes signatures"):
        plan(add.s(1, 1), link_error=chain(add.s(1), add.s(2)))  # type: ignore[arg-type]
    with pytest.raises(ArgumentsError, match="link takes signatures"):
        plan(add.s(1, 1), link=[add])
    with pytest.raises(ArgumentsError, match="made from a job definition"):
        Signature("add")  # type: ignore[arg-type]


def test_arguments_that_cannot_take_the_result_are_refused_before_anything_is_stored(
        app: App) -> None:
    add, keywords = defs(app, "add", "keywords")
    with pytest.raises(ArgumentsError, match=r"keywords.s\(x=1\) receives the result"):
        chain(add.s(1, 1), keywords.s(x=1)).apply_async()
    with pytest.raises(ArgumentsError, match=r"do not fit job 'add'.*use \.si"):
        chain(add.s(1, 1), add.s(1, 2)).apply_async()  # add(result, 1, 2)
    with pytest.raises(ArgumentsError, match="do not fit job 'add'"):
        group(add.s(1, 1), add.s()).apply_async()


# -- plan -----------------------------------------------------------------------------------
def shape(app: App, item: Any, **links: Any) -> list[tuple[str, tuple[int, ...], str, str]]:
    planned = plan(item, **links)
    return [(n.signature.definition_id, n.parents, n.kind, n.argument)
            for n in planned.nodes]


def test_a_chain_passes_each_result_to_the_next(app: App) -> None:
    (add,) = defs(app, "add")
    assert shape(app, chain(add.s(1, 2), add.s(10), add.si(0, 0))) == [
        ("add", (), "first", "nothing"), ("add", (0,), "chain", "result"),
        ("add", (1,), "chain", "nothing")]
    planned = plan(add.s(1, 2) | add.s(3))
    assert (planned.outputs, planned.many) == ((1,), False)


def test_a_group_runs_side_by_side_and_a_chord_waits_for_all(app: App) -> None:
    add, tsum = defs(app, "add", "tsum")
    planned = plan(group(add.s(i, i) for i in range(3)))
    assert [n.parents for n in planned.nodes] == [(), (), ()]
    assert (planned.outputs, planned.many) == ((0, 1, 2), True)
    assert shape(app, chord(group(add.s(1, 1), chain(add.s(2, 2), add.s(1))), tsum.s())) == [
        ("add", (), "first", "nothing"), ("add", (), "first", "nothing"),
        ("add", (1,), "chain", "result"), ("tsum", (0, 2), "chord", "results")]
    # a group followed by a step is a chord; a group after a step gets its result
    assert shape(app, group(add.s(1, 1), add.s(2, 2)) | tsum.s()) == shape(
        app, chord([add.s(1, 1), add.s(2, 2)], tsum.s()))
    assert shape(app, chain(add.s(1, 1), group(add.s(1), add.s(2)), tsum.s())) == [
        ("add", (), "first", "nothing"), ("add", (0,), "chain", "result"),
        ("add", (0,), "chain", "result"), ("tsum", (1, 2), "chord", "results")]


def test_links_follow_the_result_and_errbacks_watch_every_job(app: App) -> None:
    add, tsum = defs(app, "add", "tsum")
    planned = plan(chain(add.s(1, 1), add.s(1)), link=tsum.si([1]),
                   link_error=[add.s(1), add.si(0, 0)])
    assert [(n.parents, n.kind, n.trigger, n.argument) for n in planned.nodes[2:]] == [
        ((1,), "link", "success", "nothing"),
        ((0, 1), "errback", "failure", "job_id"),  # the jobs of the workflow, not the link
        ((0, 1), "errback", "failure", "nothing")]
    assert planned.outputs == (1,)
    grouped = plan(group(add.s(1, 1), add.s(2, 2)), link=tsum.s())
    assert grouped.nodes[-1].argument == "results"


# -- decide -----------------------------------------------------------------------------------
CHAIN = Step("s", "chain", "success", "result")
CHORD = Step("s", "chord", "success", "results")
ERRBACK = Step("s", "errback", "failure", "job_id")


def parent(job_id: str, status: str, error: str | None = None) -> Parent:
    return Parent(job_id, "add", status, error and "ValueError", error, error and "tb")


def test_a_step_waits_until_its_parents_succeeded() -> None:
    assert decide(CHAIN, [parent("a", "running")]) == Wait()
    assert decide(CHAIN, [parent("a", "missing")]) == Wait()  # not recorded yet
    assert decide(CHORD, [parent("a", "succeeded"), parent("b", "retrying")]) == Wait()
    released = decide(CHAIN, [parent("a", "succeeded")])
    assert isinstance(released, Release)
    assert (released.argument, released.sources) == ("result", ("a",))
    released = decide(CHORD, [parent("b", "succeeded"), parent("a", "succeeded")])
    assert isinstance(released, Release)
    assert (released.argument, released.sources) == ("results", ("b", "a"))  # in order
    immutable = decide(Step("s", "chain", "success", "nothing"), [parent("a", "succeeded")])
    assert isinstance(immutable, Release) and immutable.sources == ()


def test_a_failed_member_fails_the_chord_with_its_error() -> None:
    decision = decide(CHORD, [parent("a", "succeeded"), parent("b", "failed", "broke"),
                              parent("c", "running")])
    assert isinstance(decision, Abandon)
    assert (decision.status, decision.error_type) == ("failed", "ValueError")
    assert decision.error_message == "chord member b (add) failed: broke"
    assert decision.error_traceback == "tb"


def test_a_failed_or_cancelled_step_cancels_the_next_with_the_reason() -> None:
    decision = decide(CHAIN, [parent("a", "failed", "broke")])
    assert isinstance(decision, Abandon) and decision.status == "cancelled"
    assert decision.error_message == "not run: job a (add) before it failed: broke"
    decision = decide(CHAIN, [parent("a", "cancelled")])
    assert isinstance(decision, Abandon)
    assert (decision.status, decision.error_type) == ("cancelled", "JobCancelled")
    assert decision.error_message == "not run: job a (add) before it was cancelled"


def test_an_errback_runs_on_a_failure_only() -> None:
    assert decide(ERRBACK, [parent("a", "succeeded"), parent("b", "running")]) == Wait()
    released = decide(ERRBACK, [parent("a", "succeeded"), parent("b", "failed", "x"),
                                parent("c", "running")])
    assert isinstance(released, Release)
    assert (released.argument, released.sources) == ("job_id", ("b",))
    unneeded = decide(ERRBACK, [parent("a", "succeeded"), parent("b", "cancelled")])
    assert isinstance(unneeded, Abandon) and unneeded.status == "cancelled"
    assert unneeded.error_type is None
