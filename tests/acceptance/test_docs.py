"""The documentation site builds, and every Python example in the docs runs.

Each page of ``docs/`` and the README is run in a subprocess of its own, in a fresh
temporary directory, on the embedded default: ``JOBMASTER_MASTER_URL`` and
``JOBMASTER_AGENT_URL`` point at SQLite files there (they override the URLs a page writes,
as they do in any deployment) and ``JOBMASTER_EAGER=1`` runs each job at enqueue, so a
page that waits for a result needs no worker. A page's ```` ```python ```` blocks run in
order in one namespace, so later blocks use what earlier ones defined.

What a page may say to this test, in HTML comments that the site does not show:

- ``<!-- docs-test: skip (REASON) -->`` on the line before a fence: that block does not run
  (it needs a server, a Django project, code of the reader's own...). The reason is
  required.
- ``<!-- docs-test: setup`` ... ``-->``: Python run at that point and not shown, for what
  a block assumes (a variable, a stand-in for the reader's own function).

A block whose first line is a comment naming a file (``# shop/app.py``) is written to that
file in the page's directory (its folders made packages) and imported as a module, so later
blocks can import it. Interactive blocks (``>>>``) run their input lines; their output is
not compared. A failing block is reported with its page and line.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]

_FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
_MARKER = re.compile(r"^\s*<!--\s*docs-test:\s*(?P<rest>.*?)\s*(?P<end>-->)?\s*$")
_SKIP = re.compile(r"skip\s+\((?P<reason>[^)]*\S[^)]*)\)")
_FILE_COMMENT = re.compile(r"#\s*(?P<path>[\w./-]+\.py)\s*$")


@dataclass(frozen=True)
class Block:
    """One piece of Python a page runs: a fenced block or a hidden setup."""

    line: int
    """Line of the page where the code starts (1-based)."""
    kind: str
    """``code``, ``setup`` or ``file`` (written to ``path`` and imported)."""
    source: str
    path: str | None = None
    skip: str | None = None
    """Why the block does not run, or ``None``."""


def _relative(page: Path) -> str:
    return page.relative_to(ROOT).as_posix() if page.is_relative_to(ROOT) else page.name


def _interactive(lines: list[str]) -> list[str]:
    """The input lines of a ``>>>`` session, output lines blanked (line numbers kept)."""
    code = []
    for line in lines:
        if line.startswith((">>> ", "... ")) or line in (">>>", "..."):
            code.append(line[4:])
        else:
            code.append("")
    return code


def extract(page: Path) -> list[Block]:
    """Every Python block and hidden setup of ``page``, in order."""
    name = _relative(page)
    lines = page.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    pending_skip: str | None = None
    i = 0
    while i < len(lines):
        line = lines[i]
        marker = _MARKER.match(line)
        if marker:
            rest = marker["rest"]
            if rest.startswith("setup"):
                if marker["end"]:
                    raise ValueError(f"{name}:{i + 1}: a docs-test setup holds code on the "
                                     "lines after it, then '-->' on a line of its own")
                end = next((j for j in range(i + 1, len(lines))
                            if lines[j].strip() == "-->"), None)
                if end is None:
                    raise ValueError(f"{name}:{i + 1}: docs-test setup has no closing '-->'")
                blocks.append(Block(i + 2, "setup", "\n".join(lines[i + 1:end])))
                i = end + 1
                continue
            skip = _SKIP.fullmatch(rest)
            if skip is None or not marker["end"]:
                raise ValueError(f"{name}:{i + 1}: unknown docs-test marker {line.strip()!r}; "
                                 "use '<!-- docs-test: skip (reason) -->' or "
                                 "'<!-- docs-test: setup' ... '-->'")
            following = _FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
            if following is None or following["info"] != "python":
                raise ValueError(f"{name}:{i + 1}: a docs-test skip marker must be on the "
                                 "line right before a ```python fence")
            pending_skip = skip["reason"].strip()
            i += 1
            continue
        fence = _FENCE.match(line)
        if fence is None:
            i += 1
            continue
        indent, mark = fence["indent"], fence["fence"]
        end = next((j for j in range(i + 1, len(lines))
                    if lines[j].strip().startswith(mark) and not lines[j].strip().strip(mark[0])),
                   None)
        if end is None:
            raise ValueError(f"{name}:{i + 1}: a code fence is not closed")
        if fence["info"] == "python":
            body = [text[len(indent):] if text.startswith(indent) else text.lstrip()
                    for text in lines[i + 1:end]]
            if any(text.startswith(">>>") for text in body):
                body = _interactive(body)
            first = body[0].strip() if body else ""
            named = _FILE_COMMENT.fullmatch(first)
            if named:
                blocks.append(Block(i + 2, "file", "\n".join(body) + "\n",
                                    path=named["path"], skip=pending_skip))
            else:
                blocks.append(Block(i + 2, "code", "\n".join(body), skip=pending_skip))
        pending_skip = None
        i = end + 1
    return blocks


def run_blocks(spec_file: str) -> None:
    """Run one page's blocks in this process (cwd: the page's directory); exit 1 naming
    the page and line of the first block that fails."""
    import importlib
    import traceback
    import types

    sys.path[0] = os.getcwd()  # as `python -c`: the page's directory, for its files
    spec = json.loads(Path(spec_file).read_text(encoding="utf-8"))
    page = spec["page"]
    main = types.ModuleType("__main__")  # the page's code runs as a script's would
    sys.modules["__main__"] = main
    namespace = main.__dict__
    for item in spec["blocks"]:
        block = Block(**item)
        started = time.monotonic()
        try:
            if block.kind == "file":
                assert block.path is not None
                target = Path(block.path)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_text(block.source, encoding="utf-8")
                for package in target.parents[:-1]:  # a package here, before any elsewhere
                    (package / "__init__.py").touch()
                importlib.invalidate_caches()
                importlib.import_module(block.path.removesuffix(".py").replace("/", "."))
            else:
                code = "\n" * (block.line - 1) + block.source
                exec(compile(code, page, "exec"), namespace)  # noqa: S102 - the docs' code
        except BaseException:  # noqa: B036 - SystemExit and KeyboardInterrupt too
            what = "hidden setup" if block.kind == "setup" else "block"
            print(f"{page}: the {what} at line {block.line} failed:", file=sys.stderr)
            traceback.print_exc()
            sys.stderr.flush()
            os._exit(1)  # not sys.exit: threads a block started must not hold the exit
        print(f"{page}:{block.line} {block.kind} ran in {time.monotonic() - started:.2f} s",
              flush=True)
    sys.stdout.flush()
    os._exit(0)


def _has_python(page: Path) -> bool:
    text = page.read_text(encoding="utf-8")
    return "```python" in text or "docs-test:" in text


def _page_env(directory: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("JOBMASTER_")}
    env.update({
        "JOBMASTER_MASTER_URL": f"sqlite:///{directory}/jobmaster.db",
        "JOBMASTER_AGENT_URL": f"sqlite:///{directory}/jobmaster.agent.db",
        "JOBMASTER_EAGER": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    return env


@pytest.mark.timeout(60)
@pytest.mark.parametrize("page", [p for p in PAGES if _has_python(p)], ids=_relative)
def test_page_examples_run(page: Path, tmp_path: Path) -> None:
    blocks = extract(page)
    runnable = [asdict(b) for b in blocks if b.skip is None]
    spec = tmp_path / "blocks.json"
    spec.write_text(json.dumps({"page": _relative(page), "blocks": runnable}), encoding="utf-8")
    work = tmp_path / "page"
    work.mkdir()
    try:
        result = subprocess.run(
            [sys.executable, __file__, str(spec)], cwd=work, env=_page_env(work),
            capture_output=True, text=True, timeout=50,
        )
    except subprocess.TimeoutExpired as exc:
        done = exc.stdout.decode() if isinstance(exc.stdout, bytes) else exc.stdout or ""
        pytest.fail(f"the examples of {_relative(page)} did not end within 50 s; the block "
                    f"after the last one listed hangs:\n{done}", pytrace=False)
    if result.returncode != 0:
        pytest.fail(f"an example of {_relative(page)} failed\n{result.stderr}"
                    f"{result.stdout[-2000:]}", pytrace=False)


def test_markers_need_a_reason(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text("<!-- docs-test: skip -->\n```python\nboom\n```\n", encoding="utf-8")
    with pytest.raises(ValueError, match="unknown docs-test marker"):
        extract(page)


def test_extract_reads_markers_setups_files_and_sessions(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: setup\nx = 1\n-->\n"
        "```python\n# shop/app.py\nA = 1\n```\n"
        "<!-- docs-test: skip (needs Redis) -->\n```python\nredis()\n```\n"
        "```python\n>>> x + 1\n2\n```\n",
        encoding="utf-8",
    )
    blocks = extract(page)
    assert [(b.kind, b.line, b.skip) for b in blocks] == [
        ("setup", 2, None), ("file", 5, None), ("code", 10, "needs Redis"), ("code", 13, None),
    ]
    assert blocks[1].path == "shop/app.py"
    assert blocks[3].source == "x + 1\n"


@pytest.mark.timeout(120)
def test_site_builds_strict(tmp_path: Path) -> None:
    from tests.services import in_ci

    try:
        import mkdocs  # noqa: F401
    except ImportError:
        if in_ci():
            pytest.fail("mkdocs is not installed; install the 'docs' extra")
        pytest.skip("mkdocs is not installed; install the 'docs' extra")
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir",
         str(tmp_path / "site")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=110,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (tmp_path / "site" / "index.html").is_file()
    assert (tmp_path / "site" / "reference" / "app" / "index.html").is_file()


if __name__ == "__main__":
    run_blocks(sys.argv[1])
