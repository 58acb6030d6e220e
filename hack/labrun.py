#!/usr/bin/env python3
"""Runs a lab (docs/labs/NN-*.md) as written and checks every output against the document.

Usage: hack/labrun.py [--step-timeout S] [--verbose] LAB.md
       hack/labrun.py --same-steps LAB.md OTHER.md   (a translation runs the same steps)
       hack/labrun.py --self-test                     (the parser and the matcher, in a second)

What a lab is (docs/labs/README.md has the whole format):
- ```console blocks: a line `$ CMD` is a command (a line ending in `\\` continues on the next
  one); the lines after it, up to the next `$ ` line or the end of the block, are its expected
  output. An empty expected output is not checked. A last expected line `[exit N]` says the
  command exits with N (otherwise it must exit 0).
- ```sh blocks: run as one step (the exit status must be 0), their output not compared.
- `<!-- lab-setup: CMD -->` runs before the first block, `<!-- lab-cleanup: CMD -->` at the
  end, also after a failure (each comment is one command; several comments run in order).
Everything runs in one bash session (`set -o pipefail`), in order, so variables, functions and
the working directory carry over; each command's stdin is /dev/null and its stdout and stderr
go, merged, to the comparison. The session starts in the repository's root with the built
binaries first on PATH: $MINIK8S_BIN if set, else target/debug.

Matching: the expected lines must account for every line of the actual output, in order.
Trailing spaces and trailing empty lines are ignored on both sides. `...` inside a line
matches any text (also none); a line that is exactly `...` matches zero or more lines.

Output: one line per step, `ok N: $ CMD` or `not ok N: $ CMD` followed by the expected and
the actual output, indented; a last line `# X of Y steps as the lab says`. Exit 0 iff every
step passed and setup and cleanup succeeded.
"""
import fcntl
import os
import re
import select
import shutil
import signal
import subprocess
import sys
import tempfile
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ELLIPSIS = "..."
EXIT_LINE = re.compile(r"^\[exit (\d+)\]$")
COMMENT = re.compile(r"<!--\s*lab-(setup|cleanup):(.*?)-->", re.S)
FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([A-Za-z0-9_-]*)")


class Step:
    """One thing to run: a console command (with its expected output) or a sh block."""

    def __init__(self, kind, command, expected, line):
        self.kind = kind  # "console", "sh", "setup" or "cleanup"
        self.command = command
        self.expected = expected  # lines; None: not compared
        self.exit_code = 0
        self.line = line  # where it starts in the document, 1-based
        if expected:
            m = EXIT_LINE.match(expected[-1].strip())
            if m:
                self.exit_code = int(m.group(1))
                self.expected = expected[:-1]
        if self.expected is not None:
            self.expected = strip_trailing_blank([x.rstrip() for x in self.expected])
            if not self.expected:
                self.expected = None

    def title(self):
        first = self.command.splitlines()[0] if self.command.strip() else ""
        more = " ..." if "\n" in self.command.strip() else ""
        if self.kind == "console":
            return f"$ {first}{more}"
        return f"({self.kind}) {first}{more}"

    def key(self):
        """What a translation must keep: the command, its expected output and exit code."""
        return (self.kind, self.command, tuple(self.expected or ()), self.exit_code)


def strip_trailing_blank(lines):
    while lines and not lines[-1].strip():
        lines = lines[:-1]
    return lines


def parse(text):
    """The lab's steps: (setup steps, steps in document order, cleanup steps)."""
    setup, cleanup = [], []
    for m in COMMENT.finditer(text):
        line = text.count("\n", 0, m.start()) + 1
        step = Step(m.group(1), m.group(2).strip(), None, line)
        (setup if m.group(1) == "setup" else cleanup).append(step)
    steps = []
    lines = text.split("\n")
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        fence, lang = m.group(1), m.group(2)
        body_start = i + 1
        j = body_start
        while j < len(lines) and not lines[j].strip().startswith(fence):
            j += 1
        body = lines[body_start:j]
        if lang == "console":
            steps.extend(parse_console(body, body_start + 1))
        elif lang == "sh" and any(x.strip() for x in body):
            steps.append(Step("sh", "\n".join(body), None, body_start + 1))
        i = j + 1
    return setup, steps, cleanup


def parse_console(body, first_line):
    """The commands of a ```console block and the output each expects."""
    steps = []
    k = 0
    while k < len(body):
        if not body[k].startswith("$ "):
            k += 1  # text before the first command: not part of any step
            continue
        line_no = first_line + k
        cmd = [body[k][2:]]
        while cmd[-1].endswith("\\") and k + 1 < len(body):
            k += 1
            cmd.append(body[k])
        k += 1
        out = []
        while k < len(body) and not body[k].startswith("$ "):
            out.append(body[k])
            k += 1
        steps.append(Step("console", "\n".join(cmd), out, line_no))
    return steps


def line_matches(expected, actual):
    if ELLIPSIS not in expected:
        return expected == actual
    pattern = ".*".join(re.escape(p) for p in expected.split(ELLIPSIS))
    return re.fullmatch(pattern, actual, re.S) is not None


def matches(expected, actual):
    """Whether the expected lines (with `...` wildcards) account for all the actual lines."""
    expected = strip_trailing_blank([x.rstrip() for x in expected])
    actual = strip_trailing_blank([x.rstrip() for x in actual])
    memo = {}

    def go(i, j):
        if (i, j) in memo:
            return memo[(i, j)]
        if i == len(expected):
            r = j == len(actual)
        elif expected[i].strip() == ELLIPSIS:
            r = any(go(i + 1, k) for k in range(j, len(actual) + 1))
        else:
            r = j < len(actual) and line_matches(expected[i], actual[j]) and go(i + 1, j + 1)
        memo[(i, j)] = r
        return r

    return go(0, 0)


class Session:
    """One bash process; each step is sourced from a file, its output to another file."""

    def __init__(self, workdir, env):
        self.dir = workdir
        self.token = f"__labrun_{os.getpid()}_{int(time.time() * 1000)}__"
        self.proc = subprocess.Popen(
            ["bash", "--noprofile", "--norc"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            env=env,
            start_new_session=True,
        )
        self.buf = b""
        self.n = 0
        self.send("set -o pipefail\n")

    def send(self, text):
        self.proc.stdin.write(text.encode())
        self.proc.stdin.flush()

    def run(self, command, timeout):
        """(exit code or None on a timeout, output lines)."""
        self.n += 1
        script = os.path.join(self.dir, f"step{self.n}.sh")
        out = os.path.join(self.dir, f"out{self.n}")
        with open(script, "w") as f:
            f.write(command + "\n")
        self.send(f'. {script} >{out} 2>&1 </dev/null; echo "{self.token} $?"\n')
        code = self.wait_marker(timeout)
        if code is None:
            self.kill_children()
            code = self.wait_marker(5)
            note = [f"[labrun: no end after {timeout} s; its processes were killed]"]
            if code is None:
                # bash itself is busy (a shell loop such as `until ...; do sleep 1; done`):
                # end the session, so that the next step and the cleanup run in a new one
                # instead of queueing behind the loop for ever
                self.kill_session()
        else:
            note = []
        try:
            with open(out, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            text = ""
        lines = text.split("\n")
        if lines and lines[-1] == "":
            lines.pop()
        return (None if note else code), lines + note

    def wait_marker(self, timeout):
        deadline = time.monotonic() + timeout
        fd = self.proc.stdout.fileno()
        while True:
            m = re.search(re.escape(self.token.encode()) + rb" (\d+)\n", self.buf)
            if m:
                self.buf = self.buf[m.end():]
                return int(m.group(1))
            left = deadline - time.monotonic()
            if left <= 0 or self.proc.poll() is not None and not select.select([fd], [], [], 0)[0]:
                return None
            ready, _, _ = select.select([fd], [], [], left)
            if ready:
                chunk = os.read(fd, 65536)
                if not chunk:
                    return None
                self.buf += chunk

    def kill_children(self):
        """SIGKILL the session's processes but bash itself (a hung step), by pid."""
        me = self.proc.pid
        for pid in os.listdir("/proc"):
            if not pid.isdigit() or int(pid) == me:
                continue
            try:
                with open(f"/proc/{pid}/stat") as f:
                    stat = f.read()
                pgrp = int(stat[stat.rindex(")") + 2:].split()[2])
                if pgrp == me:
                    os.kill(int(pid), signal.SIGKILL)
            except (OSError, ValueError):
                pass

    def kill_session(self):
        """SIGKILL bash and everything in its process group."""
        try:
            os.killpg(self.proc.pid, signal.SIGKILL)
        except OSError:
            pass
        self.proc.wait()

    def alive(self):
        return self.proc.poll() is None

    def close(self):
        try:
            self.proc.stdin.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()


def lab_env():
    env = dict(os.environ)
    bindir = os.environ.get("MINIK8S_BIN") or os.path.join(REPO, "target", "debug")
    env["PATH"] = os.path.abspath(bindir) + os.pathsep + env.get("PATH", "/usr/bin:/bin")
    env["NO_COLOR"] = "1"
    env["LC_ALL"] = "C.UTF-8"
    return env


def indent(lines, prefix="      "):
    return "\n".join(prefix + x for x in lines) if lines else prefix + "(nothing)"


def report(n, step, ok, code, actual, verbose):
    print(f"{'ok' if ok else 'not ok'} {n}: {step.title()}", flush=True)
    if ok and not verbose:
        return
    print(f"    (line {step.line} of the lab)")
    if step.expected is not None or step.exit_code:
        print("    expected" + (f" (exit {step.exit_code})" if step.exit_code else "") + ":")
        print(indent(step.expected or ["(not checked)"]))
    print(f"    actual (exit {'none: timed out' if code is None else code}):")
    print(indent(actual), flush=True)


def hold_lab_lock(path):
    """One run of a lab at a time on this machine: labs use fixed names (containers, clusters,
    /tmp/labNN), so two runs of one lab would tear down each other's. The lock is released
    when the process ends, however it ends."""
    name = os.path.basename(path).split("-")[0]
    lock = open(f"/run/lock/minik8s-lab-{name}.lock", "w")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"labrun: another run of lab {name} is going on; waiting for it", flush=True)
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


def run_lab(path, step_timeout, verbose):
    with open(path, encoding="utf-8") as f:
        setup, steps, cleanup = parse(f.read())
    lock = hold_lab_lock(path)  # noqa: F841 (held until the process ends)
    if not steps:
        print(f"{path}: no steps found (```console or ```sh blocks)")
        return 1
    workdir = tempfile.mkdtemp(prefix="labrun-")
    env = lab_env()
    session = Session(workdir, env)
    passed, failed_hidden = 0, False
    try:
        for step in setup:
            code, out = session.run(step.command, step_timeout)
            if code != 0:
                failed_hidden = True
                report("setup", step, False, code, out, verbose)
        for n, step in enumerate(steps, 1):
            if not session.alive():
                session = Session(workdir, env)
            code, out = session.run(step.command, step_timeout)
            ok = code == step.exit_code and (
                step.expected is None or matches(step.expected, out)
            )
            passed += ok
            report(n, step, ok, code, out, verbose)
    finally:
        if not session.alive():
            session = Session(workdir, env)
        for step in cleanup:
            code, out = session.run(step.command, step_timeout)
            if code != 0:
                failed_hidden = True
                report("cleanup", step, False, code, out, verbose)
        session.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(f"# {passed} of {len(steps)} steps as the lab says")
    return 0 if passed == len(steps) and not failed_hidden else 1


def same_steps(a, b):
    """A translation keeps every step (command, output, exit code), setup and cleanup."""
    docs = []
    for path in (a, b):
        with open(path, encoding="utf-8") as f:
            setup, steps, cleanup = parse(f.read())
        docs.append([s.key() for s in setup + steps + cleanup])
    if docs[0] == docs[1]:
        print(f"{b}: the same {len(docs[0])} steps as {a}")
        return 0
    for i, (x, y) in enumerate(zip(docs[0], docs[1])):
        if x != y:
            print(f"step {i + 1} differs:\n  {a}: {x}\n  {b}: {y}")
            return 1
    print(f"{a} has {len(docs[0])} steps, {b} {len(docs[1])}")
    return 1


def self_test():
    """The parser and the matcher on small cases; then one tiny lab through bash."""
    checks = 0

    def check(cond, what):
        nonlocal checks
        checks += 1
        if not cond:
            raise AssertionError(what)

    check(matches(["a", "b"], ["a", "b"]), "exact")
    check(matches(["a  "], ["a"]), "trailing spaces")
    check(matches(["a"], ["a", "", ""]), "trailing blank lines")
    check(not matches(["a"], ["a", "b"]), "extra actual line")
    check(not matches(["a", "b"], ["a"]), "missing actual line")
    check(matches(["pid ... up"], ["pid 42 is up"]), "... inside a line")
    check(matches(["x...y"], ["xy"]), "... matches nothing")
    check(not matches(["pid ... up"], ["pid 42 is down"]), "... keeps the rest")
    check(matches(["a", "...", "z"], ["a", "z"]), "... zero lines")
    check(matches(["a", "...", "z"], ["a", "b", "c", "z"]), "... several lines")
    check(matches(["...", "z"], ["a", "z"]), "... first")
    check(matches(["a", "..."], ["a", "b", "c"]), "... last")
    check(not matches(["a", "...", "z"], ["a", "b"]), "... then a missing line")
    check(matches(["  ...  "], ["x"]), "... with spaces is the line wildcard")
    check(matches(["a.b (x) [y] *"], ["a.b (x) [y] *"]), "regex characters are literal")
    check(not matches(["a.b"], ["aXb"]), "a dot is a dot")
    check(matches(["...: ...", "..."], ["k: v", "k2: v2"]), "two wildcards")
    doc = "\n".join([
        "<!-- lab-setup: X=1 -->",
        "# t",
        "```console",
        "$ echo $X \\",
        "  two",
        "1 two",
        "$ false",
        "[exit 1]",
        "$ date",
        "```",
        "```sh",
        "Y=2",
        "```",
        "```text",
        "$ not a step",
        "```",
        "<!-- lab-cleanup: rm -f /tmp/none",
        "  -->",
    ])
    setup, steps, cleanup = parse(doc)
    check([s.command for s in setup] == ["X=1"], "setup comment")
    check([s.command for s in cleanup] == ["rm -f /tmp/none"], "multi-line cleanup comment")
    check(len(steps) == 4, f"four steps, got {[s.command for s in steps]}")
    check(steps[0].command == "echo $X \\\n  two" and steps[0].expected == ["1 two"], "continued")
    check(steps[1].exit_code == 1 and steps[1].expected is None, "[exit N]")
    check(steps[2].expected is None, "no output: not checked")
    check(steps[3].kind == "sh" and steps[3].command == "Y=2", "sh block")
    check(steps[0].line == 4, "line numbers")
    with tempfile.TemporaryDirectory(prefix="labrun-self-") as d:
        s = Session(d, lab_env())
        try:
            check(s.run("V=3; cd /tmp", 10) == (0, []), "a quiet step")
            check(s.run("echo $V; pwd; echo err >&2", 10) == (0, ["3", "/tmp", "err"]),
                  "variables, cwd and stderr carry over")
            check(s.run("false | true", 10)[0] == 1, "pipefail")
            check(s.run("exit_in_subshell() { (exit 7); }; exit_in_subshell", 10)[0] == 7,
                  "exit codes")
            code, out = s.run("sleep 30", 1)
            check(code is None and "no end" in out[-1], "a hung step times out")
            check(s.run("echo $V", 10) == (0, ["3"]), "the session survives a timeout")
            code, out = s.run("while :; do sleep 0.1; done", 1)
            check(code is None and not s.alive(), "a step looping in bash ends the session")
        finally:
            s.close()
    print(f"labrun self-test: {checks} checks passed")
    return 0


def main(argv):
    args = argv[1:]
    timeout, verbose = 60.0, False
    if args[:1] == ["--self-test"]:
        return self_test()
    if args[:1] == ["--same-steps"] and len(args) == 3:
        return same_steps(args[1], args[2])
    while args and args[0].startswith("-"):
        if args[0] == "--step-timeout" and len(args) > 1:
            try:
                timeout = float(args[1])
            except ValueError:
                print(f"labrun: --step-timeout wants seconds, not {args[1]!r}", file=sys.stderr)
                return 2
            args = args[2:]
        elif args[0] in ("-v", "--verbose"):
            verbose = True
            args = args[1:]
        else:
            break
    if len(args) != 1 or args[0].startswith("-"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if not os.path.isfile(args[0]):
        print(f"labrun: no such lab: {args[0]}", file=sys.stderr)
        return 2
    return run_lab(args[0], timeout, verbose)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
