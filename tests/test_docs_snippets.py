"""Every ```python block of README.md and docs/*.md runs as written.

The blocks of one file run in order in one shared namespace (a later block may use
what an earlier one defined, as a reader would), in a fresh temporary working
directory, on the CPU, with no network: downloads go to a closed local port. Code
that cannot run like that (it needs a GPU, the user's own files, the internet or
minutes of time) belongs in a ```text or ```sh block instead.
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
DOC_FILES = sorted([REPO_ROOT / "README.md", *(REPO_ROOT / "docs").glob("*.md")])

_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


def python_blocks(text: str) -> list[tuple[int, str]]:
    """``(line number, code)`` of each fenced block whose info string is ``python``.

    Follows CommonMark fences: a block closes at a fence of the same character at
    least as long as the opening one; an unclosed block runs to the end of the text.
    """
    blocks: list[tuple[int, str]] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        fence = opening["fence"]
        language = opening["info"].strip().split(" ")[0].lower() if opening["info"] else ""
        start = i + 1
        j = start
        while j < len(lines):
            closing = _FENCE.match(lines[j])
            if (
                closing is not None
                and closing["fence"][0] == fence[0]
                and len(closing["fence"]) >= len(fence)
                and not closing["info"].strip()
            ):
                break
            j += 1
        if language in ("python", "py", "python3"):
            indent = len(opening["indent"])
            body = [line[indent:] if line[:indent].isspace() else line for line in lines[start:j]]
            blocks.append((start + 1, "\n".join(body) + "\n"))
        i = j + 1
    return blocks


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/"


@pytest.fixture
def sandbox(tmp_path, monkeypatch):
    """A working directory and environment where a snippet can touch nothing of the user's."""
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("CNNX_MNIST_MIRRORS", _closed_port_url())
    monkeypatch.delenv("CNNX_DATA_DIR", raising=False)
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")  # CPU only, even on a GPU machine
    monkeypatch.setenv("MPLBACKEND", "Agg")
    return work


def run_blocks(path: Path, name: str) -> int:
    """Run the python blocks of ``path`` in order in one namespace; return how many.

    A failing block fails the test with ``name:line`` and the exception.
    """
    blocks = python_blocks(path.read_text(encoding="utf-8"))
    namespace: dict = {"__name__": "__main__"}
    for line, code in blocks:
        where = f"{name}:{line}"
        try:
            exec(compile(code, where, "exec"), namespace)  # running the docs is the test
        except Exception as exc:
            pytest.fail(f"the ```python block at {where} fails: {type(exc).__name__}: {exc}")
    return len(blocks)


FILES_WITH_PYTHON = [p for p in DOC_FILES if python_blocks(p.read_text(encoding="utf-8"))]


@pytest.mark.parametrize("path", FILES_WITH_PYTHON, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_python_snippets_run_as_written(path, sandbox):
    assert run_blocks(path, str(path.relative_to(REPO_ROOT))) >= 1


def test_readme_has_library_snippets():
    # Guards the extractor: the README's library section is python, not text.
    blocks = python_blocks((REPO_ROOT / "README.md").read_text(encoding="utf-8"))
    assert len(blocks) >= 3
    assert any("cnnx.fit(" in code for _, code in blocks)


def test_extractor_follows_fences():
    text = (
        "intro\n```python\na = 1\n```\n\n```text\nnot = code(\n```\n"
        "````python\nb = '```'\n```\nc = 2\n````\n  ```python\n  d = 3\n  ```\n"
        "```sh\npip install x\n```\n```py\ne = 4\n```\n"
    )
    assert [code for _, code in python_blocks(text)] == [
        "a = 1\n",
        "b = '```'\n```\nc = 2\n",
        "d = 3\n",
        "e = 4\n",
    ]
    assert [line for line, _ in python_blocks(text)] == [3, 10, 15, 21]


def test_blocks_share_a_namespace_and_a_failing_block_fails(tmp_path, sandbox):
    doc = tmp_path / "bad.md"
    doc.write_text("```python\nx = 1\n```\n\n```python\nassert x == 1\nprint(nope)\n```\n")
    with pytest.raises(pytest.fail.Exception, match=r"bad\.md:6 fails: NameError"):
        run_blocks(doc, "bad.md")
