"""The docs check: every command of every ```bash block of README.md and docs/*.md is
classified, and every one that can run on this CPU runs, so a doc cannot drift from the code.

A block's lines are joined at trailing backslashes, comments dropped, and split at `&&` and
`;` into commands; each is `launch` (python launch.py), `aggregate` (python -m aggregate) or
`other`. PLAN says, by pattern, what the check does with each; a command no pattern matches
fails the test (a new doc command must be classified here):

- run: for real, in a subprocess from a scratch directory (relative paths land there), with a
  per-command timeout, and its exit code asserted. Shrunk where the doc's command allows:
  simulated sweeps launched on Ray run under `hydra/launcher=basic` (one of them, history's
  first sweep, runs on Ray for real, joined to the test process's shared cluster);
  placeholders (SWEEP_DIR, OLD_SWEEP, ...) become sweeps made by earlier commands; an
  identical command runs once. Launches run two at a time (history's sweeps in order), then
  the other commands in the docs' order.
- plan: too costly here (the README's 15-cell HF sweep, the 15-cell NPU rehearsal): a
  validation-only pass (tests/integration/docs_plan.py: every job composed with its hydra.*
  overrides, planned and validated on this host, nothing measured), exit 0 asserted.
- skip: needs an accelerator, a cluster, the internet or an install; the reason is listed.

The list of commands, what was done and the exit codes is written to docs-commands.txt in the
test's directory and printed.
"""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import ROOT, launch_env
from tests.integration.conftest import joined_args
from tests.ray_head import Head

DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
TIMEOUT_S = 240
JOBS = 2  # launches at a time
NPU, CUDA = "needs Ascend NPUs (torch_npu, CANN)", "needs a CUDA GPU"
INSTALL = "installs packages or creates an environment (internet)"

# (pattern searched in the command, action, expected exit code or the reason), first match wins.
PLAN: list[tuple[str, str, int | str]] = [
    (
        r"^python3 -m venv|^\. \.venv/bin/activate|^pip install|^conda |^source |^git ",
        "skip",
        INSTALL,
    ),
    (r"^mv python/pyproject_npu", "skip", INSTALL),
    (r"^docker run", "skip", "runs SGLang's Ascend container image"),
    (r"^cd ", "skip", "changes directory inside a container"),
    (r"^npu-smi|torch_npu|^ray start", "skip", NPU + " / a cluster"),
    (r"cluster=existing", "skip", "an existing Ray cluster of NPU nodes"),
    (r"python -m pytest -q$", "skip", "the whole test suite (both tiers): CI runs it"),
    (r"python -m pytest -q tests/unit$", "skip", "the unit tier: CI runs it as its own step"),
    (
        r"^/usr/bin/time .*python -m pytest( -q)?( -p no:cacheprovider)?( -n \d+)?"
        r"( tests/(unit|integration))?$",
        "skip",
        "times the test suite or a tier of it (benchmarks §10): CI runs both tiers",
    ),
    (
        r"^bash bench/suite_under_load\.sh",
        "skip",
        "the whole suite three times beside CPU and memory hogs (benchmarks §10): CI runs it once",
    ),
    (
        r"-p pytest_cpu_per_test -n 0 tests/integration$",
        "skip",
        "the integration tier again in one process, each test's CPU (benchmarks §10)",
    ),
    (r"^python bench/pytest_cpu_per_test\.py", "skip", "reads the file the command before wrote"),
    (r"test_sglang_contract", "skip", "run in the NPU environment; the unit tier runs it here"),
    (r"^python -c \"import sglang", "skip", "SGLang is installed --no-deps here (contract only)"),
    (
        r"backend=sim device=npu model=llama3_8b \+hydra.launcher.ray.resources.NPU=8",
        "plan",
        "15 simulated cells on 8 declared NPUs (benchmarks §6): planned, not slept through",
    ),
    (
        r"hydra/sweeper=fleet",
        "skip",
        "a fleet sweep on 2 simulated Ray nodes: tests/integration/test_fleet.py runs it",
    ),
    (r"^(?!.*backend=sim).*device=npu", "skip", NPU),
    (r"device=cuda", "skip", CUDA),
    (
        r"^python launch.py -m batch=1,2,4,8,16 seq=64,128,256$",
        "plan",
        "the README's 15-cell HF sweep: ~90 s of measuring on this CPU",
    ),
    (
        r"^python launch.py -m workload=serve concurrency=",
        "plan",
        "4 transformers-serve servers on the tiny model (~2 min here)",
    ),
    (
        r"^(?!.*backend=sim)python launch.py workload=(conversation|trace|serve .*prefix_groups)",
        "plan",
        "a transformers-serve cell on the tiny model (~30 s here); "
        "tests/integration/test_serving_workloads.py runs a conversation and a trace cell",
    ),
    (r"^python -m workers\.serving\.make_trace", "run", 0),
    (r"^echo \"exit \$\?\"", "skip", "prints the exit code of the command before: asserted"),
    (r"history --by axes --fail-on-regression", "run", 3),  # h2 -> h3 is a 30% regression
    (r"backend.sim.fault=oom", "run", 1),  # the frontier: its oom cells are not ok
    (r"^python launch.py .*backend=sim", "run", 0),
    (r"^python -m aggregate", "run", 0),
]
# Placeholders of the docs -> what earlier commands made.
PLACEHOLDERS = {"SWEEP_DIR": "multirun/static-8b", "NEW_SWEEP": "multirun/h2",
                "OLD_SWEEP": "multirun/h1", "[--threshold 5]": "--threshold 5"}  # fmt: skip
ON_RAY = "hydra.sweep.dir=multirun/h1"  # the one simulated sweep that runs on Ray here


@dataclass
class Command:
    source: str  # file:line of its block
    text: str
    action: str = ""
    expected: int | str = 0
    ran: str = ""  # the command line as run (shrunk), when it ran
    code: int | None = None
    seconds: float = 0.0

    @property
    def expected_code(self) -> int:
        """The exit code asserted: a run's from PLAN, a validation-only pass's 0."""
        return self.expected if isinstance(self.expected, int) else 0

    @property
    def kind(self) -> str:
        if self.text.startswith("python launch.py"):
            return "launch"
        return "aggregate" if self.text.startswith("python -m aggregate") else "other"


def extract() -> list[Command]:
    out = []
    for path in DOCS:
        text = path.read_text()
        for block in re.finditer(r"^```bash\n(.*?)^```", text, re.S | re.M):
            line = text[: block.start()].count("\n") + 1
            joined = re.sub(r"\\\n\s*", "", block.group(1))
            for raw in joined.splitlines():
                cmd = re.sub(r"(^|\s+)#\s.*$", "", raw).strip()
                for part in split_commands(cmd):
                    out.append(Command(f"{path.relative_to(ROOT)}:{line}", part))
    return out


def split_commands(line: str) -> list[str]:
    """A shell line split at `&&` and `;` outside quotes."""
    parts, quote, current, i = [], "", "", 0
    while i < len(line):
        ch = line[i]
        if quote:
            quote = "" if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif line.startswith("&&", i) or ch == ";":
            parts.append(current)
            current, i = "", i + (2 if ch == "&" else 1)
            continue
        current += ch
        i += 1
    return [p.strip() for p in [*parts, current] if p.strip()]


def classify(cmd: Command) -> None:
    for pattern, action, arg in PLAN:
        if re.search(pattern, cmd.text):
            cmd.action, cmd.expected = action, arg
            return
    raise AssertionError(f"{cmd.source}: `{cmd.text}` is not classified: add it to PLAN")


def shrunk(cmd: Command, tmp: Path) -> list[str]:
    text = cmd.text
    for name, value in PLACEHOLDERS.items():
        text = text.replace(name, value)
    text = text.replace("/tmp/", f"{tmp}/")
    text = text.replace("=tests/fixtures/", f"={ROOT}/tests/fixtures/")  # as from the repo root
    args = shlex.split(text)
    if cmd.action == "plan":
        return ["python", "-m", "tests.integration.docs_plan", *args[2:]]
    if cmd.kind == "launch" and "hydra/launcher=basic" not in args and ON_RAY not in args:
        args = [a for a in args if not a.startswith("+hydra.launcher.ray")]
        args.append("hydra/launcher=basic")  # no Ray start per command
        if not any(a.startswith("hydra.sweep.dir=") for a in args):
            args.append(f"hydra.sweep.dir=multirun/{re.sub(r'[^A-Za-z0-9]+', '-', cmd.source)}")
    return args


def _stages(todo: list[Command]) -> list[list[list[Command]]]:
    """The launches in chains that must run in order (the history sweeps h1 -> h2 -> h3: a
    later one is compared with the earlier), every other launch a chain of its own; then
    every other command (reports on those sweeps) in one chain, in the docs' order."""
    launches = [c for c in todo if c.kind == "launch"]
    history = [c for c in launches if re.search(r"multirun/h\d( |$)", c.ran)]
    chains = [history] if history else []
    chains += [[c] for c in launches if c not in history]
    return [chains, [[c for c in todo if c.kind != "launch"]]]


def _run_one(cmd: Command, tmp: Path, env: dict[str, str]) -> None:
    args = shlex.split(cmd.ran)
    script = [str(ROOT / "launch.py")] if args[1] == "launch.py" else args[1:2]
    argv = [sys.executable, *script, *args[2:]]
    start = time.monotonic()
    proc = subprocess.run(argv, cwd=tmp, env=env, capture_output=True, text=True,
                          timeout=TIMEOUT_S)  # fmt: skip
    cmd.code, cmd.seconds = proc.returncode, time.monotonic() - start
    last = (proc.stdout.strip().splitlines() or [""])[-1]
    cmd.ran += f"\n    last line: {last[:160]}" if last else ""
    if cmd.code != cmd.expected_code:
        cmd.ran += f"\n    stdout: {proc.stdout[-1500:]}\n    stderr: {proc.stderr[-1500:]}"


def run_all(commands: list[Command], tmp: Path, cache: Path, head: Head) -> None:
    """Every command to run, identical ones once. The launches run JOBS at a time (each is
    mostly a new interpreter's imports and a few simulated cells), chains in order; then
    the reports. The one sweep on Ray joins this test process's shared NPU cluster."""
    env = launch_env(cache)
    env["PYTHONPATH"] = str(ROOT)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"
    env.update(head.join_env)
    first: dict[str, Command] = {}
    todo = []
    for cmd in (c for c in commands if c.action in ("run", "plan")):
        args = shrunk(cmd, tmp)
        if ON_RAY in args:
            args = joined_args(head, tuple(args))
        cmd.ran = shlex.join(args)
        if cmd.ran in first:
            continue
        first[cmd.ran] = cmd
        todo.append(cmd)
    for stage in _stages(todo):
        with ThreadPoolExecutor(JOBS) as pool:
            futures = [pool.submit(lambda ch: [_run_one(c, tmp, env) for c in ch], chain)
                       for chain in stage]  # fmt: skip
            for f in futures:
                f.result()
    ran = {id(c) for c in todo}
    for cmd in commands:
        if cmd.action in ("run", "plan") and id(cmd) not in ran:
            twin = first[cmd.ran]
            cmd.code, cmd.ran = twin.code, f"(run once, as {twin.source})"


def listing(commands: list[Command]) -> str:
    lines = []
    for c in commands:
        if c.action == "skip":
            lines.append(f"{c.source:24} skip    {c.kind:9} {c.text}\n    reason: {c.expected}")
        else:
            why = f"\n    validation only: {c.expected}" if c.action == "plan" else ""
            lines.append(f"{c.source:24} {c.action:7} {c.kind:9} exit {c.code} (expected "
                         f"{c.expected_code}) {c.seconds:5.1f} s  {c.text}\n    as: {c.ran}{why}")  # fmt: skip
    return "\n".join(lines) + "\n"


def test_every_doc_command_is_classified_and_the_runnable_ones_run(
    tmp_path, tiny_cache, shared_ray_npu
):
    commands = extract()
    assert len(commands) > 30
    for cmd in commands:
        classify(cmd)
    assert any(c.action == "run" and c.kind == "launch" for c in commands)
    run_all(commands, tmp_path, tiny_cache, shared_ray_npu)
    text = listing(commands)
    (tmp_path / "docs-commands.txt").write_text(text)
    print(text)
    for cmd in commands:
        if cmd.action != "skip":
            assert cmd.code == cmd.expected_code, f"{cmd.source}: `{cmd.text}`\n{cmd.ran}"
