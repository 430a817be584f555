"""The README's Python example prints what the README says it prints.

The block under "From Python" is run as a user would run it (from the checkout's root) and its
output compared line by line with the ``text`` block that follows it: a change of the default
contour levels left the README showing levels the code no longer chose.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_python_example_prints_what_the_readme_shows(monkeypatch):
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("### From Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    shown = re.search(r"prints\s*```text\n(.*?)```", section, re.S).group(1)
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {"__name__": "__readme__"})
    assert out.getvalue().splitlines() == shown.splitlines()


def _console_commands(text: str, names: tuple[str, ...]):
    """``(argv, shown lines)`` of each ``$ spectra NAME ...`` in the README's console blocks."""
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        for chunk in re.split(r"^\$ ", block, flags=re.M)[1:]:
            command, *shown = chunk.rstrip("\n").split("\n")
            argv = command.split("#")[0].split()
            if argv[0] == "spectra" and argv[1] in names:
                yield argv[1:], [line for line in shown if line.strip()]


def test_the_readme_shows_what_the_figure_commands_print(monkeypatch, tmp_path, capsys):
    # review11: the pseudospectra and compare blocks showed no output, although both print (a
    # summary line per matrix, the comparison table); the figures go to tmp_path, not docs/
    from spectra_cli.main import main

    monkeypatch.chdir(ROOT)
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    seen = set()
    for argv, shown in _console_commands(text, ("pseudospectra", "transient", "compare")):
        at = argv.index("-o") + 1
        figure = argv[at]
        argv[at] = str(tmp_path / Path(figure).name)
        capsys.readouterr()
        assert main(argv) == 0
        out, err = capsys.readouterr()
        err = err.replace(argv[at], figure)
        printed = [line for line in out.splitlines() if line.strip()]
        logged = [line for line in err.splitlines() if line.strip()]
        timing = re.compile(r"seconds=[0-9.]+")
        got = [timing.sub("seconds=", line) for line in printed]
        assert [timing.sub("seconds=", line) for line in shown if line not in logged] == got, argv
        assert [line for line in shown if line in logged] == logged, argv
        seen.add(argv[0])
    assert seen == {"pseudospectra", "transient", "compare"}
