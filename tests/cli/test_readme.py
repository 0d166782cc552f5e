"""README.md keeps its promises: the two set-up commands come first, its examples run,
and ``scripts/test`` / ``.ci/run`` behave as it says."""

from __future__ import annotations

import os
import re
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
FENCE = re.compile(r"^```([\w-]*)\n(.*?)^```\n", re.MULTILINE | re.DOTALL)

PROMISED = ["pip install . && millstream wordcount", "./scripts/test"]


def readme() -> str:
    return README.read_text(encoding="utf-8")


def code_blocks(language: str) -> list[str]:
    return [body for lang, body in FENCE.findall(readme()) if lang == language]


def leading_commands(text: str) -> list[str]:
    """Commands in the code blocks that follow the title, before any other text."""
    lines = text.splitlines()
    assert lines[0].startswith("# "), "README.md must start with its title line"
    commands: list[str] = []
    in_block = False
    for line in lines[1:]:
        if line.startswith("```"):
            in_block = not in_block
        elif in_block:
            if line.strip():
                commands.append(line.strip())
        elif line.strip():
            break  # first prose line: the set-up commands are over
    return commands


def test_readme_starts_with_the_two_promised_commands() -> None:
    assert leading_commands(readme()) == PROMISED


def test_leading_commands_parser() -> None:
    text = "# t\n\n```bash\na\n```\n\n```sh\nb\n```\nprose\n```\nc\n```\n"
    assert leading_commands(text) == ["a", "b"]
    assert leading_commands("# t\nprose first\n```\na\n```\n") == []


def test_readme_python_blocks_exist() -> None:
    blocks = code_blocks("python")
    assert len(blocks) >= 2
    assert all("from millstream import Stream" in block for block in blocks)
    assert "source.map(str.split).flatten().frequencies()" in blocks[0]


@pytest.mark.parametrize("index", range(len(code_blocks("python"))))
def test_readme_python_block_runs(index: int, capsys: pytest.CaptureFixture[str]) -> None:
    block = code_blocks("python")[index]
    exec(compile(block, f"README.md python block {index + 1}", "exec"), {"__name__": "readme"})
    if "print(" in block:
        assert capsys.readouterr().out.strip()


def test_readme_mentions_streamz_import_change_and_docs() -> None:
    text = readme()
    assert "-from streamz import Stream\n+from millstream import Stream" in text
    assert "(docs/benchmarks.md)" in text
    assert "(docs/differences-from-streamz.md)" in text


# -- scripts/test and .ci/run -----------------------------------------------------------------


@pytest.mark.parametrize("script", ["scripts/test", ".ci/run"])
def test_scripts_are_strict_executable_bash(script: str) -> None:
    path = ROOT / script
    assert path.stat().st_mode & stat.S_IXUSR
    text = path.read_text(encoding="utf-8")
    assert text.startswith("#!/usr/bin/env bash\n")
    assert "\nset -euo pipefail\n" in text
    subprocess.run(["bash", "-n", str(path)], check=True)


def test_ci_runs_the_readme_command() -> None:
    text = (ROOT / ".ci/run").read_text(encoding="utf-8")
    assert f"\n{PROMISED[1]} " in text


@pytest.fixture
def fake_python(tmp_path: Path) -> tuple[Path, Path]:
    """A stand-in for python: logs ``-m MODULE args``, exits with $FAKE_<MODULE>_RC."""
    log = tmp_path / "calls.log"
    fake = tmp_path / "python"
    fake.write_text(
        textwrap.dedent(
            f"""\
            #!/usr/bin/env bash
            echo "$* | stdin: $(cat | wc -c)" >> {log}
            rc_var="FAKE_${{2^^}}_RC"
            exit "${{!rc_var:-0}}"
            """
        )
    )
    fake.chmod(0o755)
    return fake, log


def run_script(
    script: str, fake: Path, *args: str, **rcs: int
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    env = dict(os.environ, PYTHON=str(fake), MILLSTREAM_SKIP_SETUP="1")
    env.update({f"FAKE_{name.upper()}_RC": str(rc) for name, rc in rcs.items()})
    proc = subprocess.run(
        [str(ROOT / script), *args],
        input="some stdin",
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    log = fake.parent / "calls.log"
    calls = log.read_text().splitlines() if log.exists() else []
    return proc, calls


def test_scripts_test_runs_ruff_mypy_pytest(fake_python: tuple[Path, Path]) -> None:
    fake, _ = fake_python
    proc, calls = run_script("scripts/test", fake, "tests/cli", "-x")
    assert proc.returncode == 0, proc.stderr
    lint = " ".join(p for p in ("src", "tests", "benchmarks") if (ROOT / p).exists())
    assert [c.split(" | ")[0] for c in calls] == [
        f"-m ruff check {lint}",
        "-m mypy",
        "-m pytest tests/cli -x",
    ]


@pytest.mark.parametrize(
    ("rcs", "message"),
    [
        ({"pytest": 5}, "pytest (no tests collected)"),
        ({"pytest": 1}, "pytest (exit code 1)"),
        ({"ruff": 1}, "ruff"),
        ({"mypy": 1}, "mypy"),
    ],
)
def test_scripts_test_fails_on_any_failure(
    fake_python: tuple[Path, Path], rcs: dict[str, int], message: str
) -> None:
    fake, _ = fake_python
    proc, calls = run_script("scripts/test", fake, **rcs)
    assert proc.returncode == 1
    assert f"FAILED: {message}" in proc.stderr
    assert len(calls) == 3  # every check runs even after one fails


def test_ci_run_passes_and_fails_with_scripts_test(fake_python: tuple[Path, Path]) -> None:
    fake, log = fake_python
    proc, calls = run_script(".ci/run", fake)
    assert proc.returncode == 0, proc.stderr
    assert len(calls) == 3
    assert all(c.endswith("| stdin: 0") for c in calls)  # CI gives the checks no stdin
    log.unlink()
    proc, _ = run_script(".ci/run", fake, pytest=5)
    assert proc.returncode != 0
