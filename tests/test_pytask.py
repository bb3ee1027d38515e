"""Python task classes in real child processes: parameters, discovery, hooks, isolation,
data between tasks, Flowmancer job files and flows built in code."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from .conftest import ROOT, alive, cli, write

HOOKS = '''
import os, time
from jobflow_tui import Task, task

def note(self, what):
    with open(os.environ["HOOK_LOG"], "a") as f:
        f.write(f"{self.task_name}:{self.attempt}:{what}\\n")

class Noting(Task):
    def on_create(self): note(self, "create")
    def on_restart(self): note(self, "restart")
    def on_success(self): note(self, "success")
    def on_failure(self): note(self, "failure")
    def on_destroy(self): note(self, "destroy")
    def on_abort(self): note(self, "abort")

@task
class Succeeds(Noting):
    def run(self):
        note(self, "run")
        return {"n": 1}

@task
class FailsOnce(Noting):
    def run(self):
        note(self, "run")
        if self.attempt == 1:
            raise RuntimeError("first attempt fails")

@task
class Gate(Noting):
    path: str
    def run(self):
        note(self, "run")
        if not os.path.exists(self.path):
            raise FileNotFoundError(self.path)

@task
class Hangs(Noting):
    def run(self):
        note(self, "run")
        print("hanging", flush=True)
        while True:
            time.sleep(0.05)
'''


def hooks(tmp_path: Path) -> list[str]:
    return (tmp_path / "hooks.log").read_text().split()


def job(tmp_path: Path, tasks: str, config: str = "") -> Path:
    write(tmp_path / "tasks" / "hooked.py", HOOKS)
    return write(tmp_path / "job.yaml", f"config: {{{config}}}\ntasks:\n{tasks}")


def run(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    return cli("job.yaml", *args, cwd=tmp_path, env={"HOOK_LOG": str(tmp_path / "hooks.log")})


def journal(tmp_path: Path) -> list[str]:
    """The lines of the run's attempt journal: `<task>.<attempt> pid|result|exit ...`."""
    text = next((tmp_path / ".jobflow").glob("*/runs/*/attempts.status")).read_text()
    return [record.rstrip("\n") for record in text.split("\x1e") if record]  # RS starts each record


def checkpoint(tmp_path: Path) -> dict:
    return json.loads(next((tmp_path / ".jobflow").glob("*/checkpoint.json")).read_text())


# ---- parameters ---------------------------------------------------------------------

TYPED = '''
from enum import Enum
from pydantic import BaseModel
from jobflow_tui import Task, task

class Protocol(Enum):
    HTTP = "HTTP"
    HTTPS = "HTTPS"

class APIDetails(BaseModel):
    protocol: Protocol = Protocol.HTTPS
    base_url: str
    endpoint: str

@task
class Download(Task):
    api_details: APIDetails
    target_dir: str
    target_filename: str = "data.json"
    retries: int = 3

    def run(self):
        d = self.api_details
        print(f"{d.protocol.value}://{d.base_url}{d.endpoint} -> {self.target_dir}/{self.target_filename} x{self.retries}")
'''


def test_typed_parameters_good_nested_model_and_enum(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "typed.py", TYPED)
    write(tmp_path / "job.yaml", """
        tasks:
          get:
            task: Download
            parameters:
              api_details: {base_url: www.example.com, endpoint: /v1/today, protocol: HTTP}
              target_dir: /data
              retries: "5"
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert "get | HTTP://www.example.com/v1/today -> /data/data.json x5" in r.stdout


def test_parameter_problems_are_located_and_nothing_runs(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "typed.py", TYPED)
    write(tmp_path / "job.yaml", """
        tasks:
          first: {command: 'touch ran'}
          missing:
            task: Download
            parameters: {api_details: {base_url: x, endpoint: /}}
          wrong:
            task: Download
            parameters:
              api_details: {base_url: x, endpoint: /, protocol: GOPHER}
              target_dir: /d
              retries: lots
          unknown: {task: Downlaod}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 2
    err = r.stderr
    assert "job.yaml:5:17: task 'missing': parameter 'target_dir' is required" in err
    assert "job.yaml:9:57: task 'wrong': parameter 'api_details.protocol': Input should be 'HTTP' or 'HTTPS'" in err
    assert "job.yaml:11:16: task 'wrong': parameter 'retries': Input should be a valid integer" in err
    assert "job.yaml:12:19: task 'unknown': unknown task class 'Downlaod'; did you mean 'Download'?" in err
    assert "Traceback" not in err
    assert not (tmp_path / "ran").exists() and not (tmp_path / ".jobflow").exists()


def test_broken_task_module_is_a_located_error(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "broken.py", "from jobflow_tui import Task, task\n\nx = 1 +\n")
    write(tmp_path / "tasks" / "raises.py", "import json\nraise ImportError('needs a missing library')\n")
    write(tmp_path / "job.yaml", "tasks:\n  a: {command: 'true'}\n  b: {task: Nothing}\n")
    r = cli("validate", "job.yaml", cwd=tmp_path)
    assert r.returncode == 2
    assert f"{tmp_path / 'tasks' / 'broken.py'}:3:1: syntax error in task module" in r.stderr
    assert f"{tmp_path / 'tasks' / 'raises.py'}:2:1: cannot import task module: ImportError: needs a missing library" in r.stderr


# ---- discovery ------------------------------------------------------------------------

SIMPLE = "from jobflow_tui import Task, task\n\n@task\nclass {name}(Task):\n    def run(self):\n        print('{name} ran')\n"


def test_discovery_from_tasks_dir_extension_dirs_and_packages(tmp_path: Path) -> None:
    write(tmp_path / "jobs" / "tasks" / "local.py", SIMPLE.format(name="FromTasksDir"))
    write(tmp_path / "shared" / "more.py", SIMPLE.format(name="FromExtensionDir"))
    write(tmp_path / "site" / "mypkg" / "__init__.py", "")
    write(tmp_path / "site" / "mypkg" / "sub" / "__init__.py", "")
    write(tmp_path / "site" / "mypkg" / "sub" / "tasks.py", SIMPLE.format(name="FromPackage"))
    write(tmp_path / "jobs" / "job.yaml", """
        config:
          extension_directories: [../shared]
          extension_packages: [mypkg]
        tasks:
          a: {task: FromTasksDir}
          b: {task: FromExtensionDir}
          c: {task: FromPackage}
    """)
    r = cli("job.yaml", cwd=tmp_path / "jobs", env={"PYTHONPATH": str(tmp_path / "site")})
    assert r.returncode == 0, r.stderr
    for line in ("a | FromTasksDir ran", "b | FromExtensionDir ran", "c | FromPackage ran"):
        assert line in r.stdout


# ---- hooks ------------------------------------------------------------------------------

def test_hooks_in_order_for_success_failure_and_retry(tmp_path: Path) -> None:
    job(tmp_path, "  ok: {task: Succeeds}\n  flaky: {task: FailsOnce, max_attempts: 2, dependencies: [ok]}\n")
    r = run(tmp_path)
    assert r.returncode == 0, r.stdout
    assert hooks(tmp_path) == [
        "ok:1:create", "ok:1:run", "ok:1:success", "ok:1:destroy",
        "flaky:1:create", "flaky:1:run", "flaky:1:failure", "flaky:1:destroy",
        "flaky:2:create", "flaky:2:restart", "flaky:2:run", "flaky:2:success", "flaky:2:destroy",
    ]
    assert "RuntimeError: first attempt fails" in r.stdout  # the traceback is in the log


def test_on_restart_on_resume(tmp_path: Path) -> None:
    job(tmp_path, f"  gate: {{task: Gate, parameters: {{path: {tmp_path}/open}}}}\n")
    assert run(tmp_path).returncode == 1
    (tmp_path / "open").touch()
    assert run(tmp_path, "--resume").returncode == 0
    assert hooks(tmp_path) == ["gate:1:create", "gate:1:run", "gate:1:failure", "gate:1:destroy",
                               "gate:2:create", "gate:2:restart", "gate:2:run", "gate:2:success", "gate:2:destroy"]


def test_timeout_of_an_endless_loop_calls_on_abort_then_kills(tmp_path: Path) -> None:
    job(tmp_path, "  hang: {task: Hangs, timeout: 1, kill_grace: 2}\n  other: {command: 'echo other'}\n")
    r = run(tmp_path)
    assert r.returncode == 1
    assert "hang | hanging" in r.stdout and "timed out after 1s" in r.stdout
    assert hooks(tmp_path) == ["hang:1:create", "hang:1:run", "hang:1:abort", "hang:1:destroy"]
    assert "other | other" in r.stdout


def test_exit_crash_and_bad_return_fail_only_their_task(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "bad.py", '''
import ctypes, os, datetime
from jobflow_tui import Task, task

@task
class Exits(Task):
    def run(self):
        print("bye"); os._exit(9)

@task
class Segfaults(Task):
    def run(self):
        ctypes.string_at(0)

@task
class ReturnsObject(Task):
    def run(self):
        return {"when": object()}
''')
    write(tmp_path / "job.yaml", """
        tasks:
          exits: {task: Exits}
          segv: {task: Segfaults}
          obj: {task: ReturnsObject}
          fine: {command: 'echo fine'}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 1
    cp = checkpoint(tmp_path)["tasks"]
    assert cp["exits"]["state"] == "failed" and cp["exits"]["exit_code"] == 9
    assert cp["segv"]["state"] == "failed" and cp["segv"]["exit_code"] == -11
    assert cp["obj"]["state"] == "failed" and "not JSON-serialisable" in r.stdout
    assert cp["fine"]["state"] == "succeeded"


def test_abort_of_a_python_task_from_the_api(tmp_path: Path) -> None:
    import asyncio

    from jobflow_tui.engine import Scheduler
    from jobflow_tui.jobdef import load_job
    from jobflow_tui.worker.client import check

    job(tmp_path, "  hang: {task: Hangs}\n")
    os.environ["HOOK_LOG"] = str(tmp_path / "hooks.log")
    try:
        j = load_job(str(tmp_path / "job.yaml"))
        assert check(j) == []

        async def go() -> Scheduler:
            s = Scheduler(j, state_dir=str(tmp_path / "state"))
            await s.start()
            while not (s.tasks["hang"].pid and (tmp_path / "hooks.log").exists()):
                await asyncio.sleep(0.02)
            await s.abort("hang")
            await s.close()
            return s

        s = asyncio.run(go())
    finally:
        del os.environ["HOOK_LOG"]
    assert s.tasks["hang"].state == "aborted"
    assert hooks(tmp_path)[-2:] == ["hang:1:abort", "hang:1:destroy"]


# ---- data between tasks ------------------------------------------------------------------

DATA = '''
from jobflow_tui import Task, task

@task
class Produce(Task):
    def run(self):
        self.shared_dict["produced"] = self.params.get("day", "?")
        return {"rows": 42}

@task
class Consume(Task):
    fail_path: str
    def run(self):
        import os
        rows = self.pull_output("produce")["rows"]
        cmd = self.pull_output("cmd")
        print(f"rows={rows} cmd={cmd} shared={self.shared_dict}")
        if os.path.exists(self.fail_path):
            raise RuntimeError("asked to fail")
        self.shared_dict["consumed"] = rows
        return rows * 2
'''


def test_outputs_and_shared_dict_flow_and_survive_resume(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "data.py", DATA)
    write(tmp_path / "job.yaml", f"""
        tasks:
          produce: {{task: Produce}}
          cmd: {{command: 'echo "size=7" >> $JOBFLOW_OUTPUT', dependencies: [produce]}}
          consume: {{task: Consume, parameters: {{fail_path: {tmp_path}/fail}}, dependencies: [cmd]}}
          tell: {{command: 'cat $JOBFLOW_UPSTREAM_OUTPUTS', dependencies: [consume]}}
    """)
    (tmp_path / "fail").touch()
    r = cli("job.yaml", "-p", "day=monday", cwd=tmp_path)
    assert r.returncode == 1
    assert "consume | rows=42 cmd={'size': '7'} shared={'produced': 'monday'}" in r.stdout
    (tmp_path / "fail").unlink()
    r = cli("job.yaml", "--resume", "-p", "day=monday", cwd=tmp_path)
    assert r.returncode == 0, r.stdout
    # upstream outputs and the shared dict came back from the checkpoint
    assert "consume | rows=42 cmd={'size': '7'} shared={'produced': 'monday'}" in r.stdout
    cp = checkpoint(tmp_path)
    assert cp["shared_dict"] == {"produced": "monday", "consumed": 42}
    assert cp["tasks"]["consume"]["outputs"] == {"value": 84}
    tell = next(line for line in r.stdout.splitlines() if line.startswith("tell | "))
    assert json.loads(tell[len("tell | "):])["consume"] == {"value": 84}


# ---- Flowmancer and flows in code ---------------------------------------------------------

def test_flowmancer_readme_job_runs_unchanged(tmp_path: Path) -> None:
    work = Path(shutil.copytree(ROOT / "tests" / "flowmancer_readme", tmp_path / "proj"))
    r = cli("job.yaml", cwd=work)
    assert r.returncode == 1  # its last task fails on purpose, three times
    cp = checkpoint(work)
    assert cp["job"]["name"] == "my-flowmancer-job"
    assert {n: t["state"] for n, t in cp["tasks"].items()} == {
        "succeed-task-a": "succeeded", "succeed-task-b": "succeeded", "final-fail-task": "failed"}
    assert cp["tasks"]["final-fail-task"]["attempts"] == 3
    assert "final-fail-task | Printing `my_var` value: Hello from: My First Task!!" in r.stdout
    assert "RuntimeError: Let this be caught by Flowmancer" in r.stdout
    assert "succeed-task-a | Starting up and sleeping for 5 seconds!" in r.stdout


def test_flow_built_in_code_runs_on_the_same_engine(tmp_path: Path) -> None:
    script = write(tmp_path / "pipeline.py", '''
        from jobflow_tui.flow import Flow

        flow = Flow("in-code", max_concurrency=2)
        flow.command("extract", "echo rows=3 >> $JOBFLOW_OUTPUT")

        @flow.task(depends_on=["extract"], max_attempts=2)
        def transform(task):
            rows = int(task.pull_output("extract")["rows"])
            task.shared_dict["rows"] = rows
            print("transforming", rows)
            return {"rows": rows * 2}

        @flow.task(depends_on=["transform"])
        def report(task):
            print("report", task.pull_output("transform")["rows"], task.shared_dict["rows"])

        if __name__ == "__main__":
            raise SystemExit(flow.run(headless=True))
    ''')
    r = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "transform | transforming 3" in r.stdout and "report | report 6 3" in r.stdout
    assert (tmp_path / ".jobflow" / "in-code" / "checkpoint.json").exists()


def test_example_python_job(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "jobdefs", tmp_path / "jobdefs")
    shutil.copytree(ROOT / "tasks", tmp_path / "tasks")
    r = cli("jobdefs/python.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    for line in ("publish | on_restart: running again after a failure",
                 "publish | published 120 rows of orders to warehouse",
                 "notify | notify: published 120 rows"):
        assert line in r.stdout


PIDS = """
import logging, os, signal, subprocess, sys, threading, time
from jobflow_tui import Task, task

COUNT = 0

def me(**extra):
    return {"pid": os.getpid(), "pgid": os.getpgid(0), **extra}

@task
class Pid(Task):
    def run(self):
        t0 = time.time()
        time.sleep(0.01)
        return me(t0=t0, t1=time.time())

@task
class Thread(Task):
    def run(self):
        threading.Thread(target=time.sleep, args=(30,), daemon=True).start()
        return me()

@task
class Child(Task):
    def run(self):
        p = subprocess.Popen(["sleep", "30"])
        return me(child=p.pid)

@task
class Handler(Task):
    def run(self):
        logging.getLogger("mine").addHandler(logging.StreamHandler())
        return me()

@task
class SysPath(Task):
    def run(self):
        sys.path.append("/nowhere")
        return me()

@task
class Signal(Task):
    def run(self):
        signal.signal(signal.SIGUSR1, lambda *a: None)
        return me()

@task
class Counts(Task):
    fresh_process = True
    def run(self):
        global COUNT
        COUNT += 1
        return me(count=COUNT)

@task
class FailsOnce(Task):
    def run(self):
        if self.attempt == 1:
            raise RuntimeError("once")
        return me()
"""


def test_python_attempts_share_no_process_while_running_and_reuse_clean_ones(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "pids.py", PIDS)
    n = 40
    write(tmp_path / "job.yaml", "config: {max_concurrency: 8}\ntasks:\n" + "".join(f"  t{i}: {{task: Pid}}\n" for i in range(n)))
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    outs = [t["outputs"] for t in checkpoint(tmp_path)["tasks"].values()]
    assert all(o["pid"] == o["pgid"] for o in outs)  # each attempt's process leads its group
    by_pid: dict[int, list] = {}
    for o in outs:
        by_pid.setdefault(o["pid"], []).append((o["t0"], o["t1"]))
    assert len(by_pid) < n  # clean processes took later attempts
    for spans in by_pid.values():  # ... one at a time
        spans.sort()
        assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans))


def test_a_python_task_that_leaves_anything_behind_gets_no_successor(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "pids.py", PIDS)
    kinds = ["Thread", "Child", "Handler", "SysPath", "Signal", "Counts", "FailsOnce"]
    chain = ["  first: {task: Pid}\n", "  clean: {task: Pid, dependencies: [first]}\n"]
    prev = "clean"
    for k in kinds:
        chain.append(f"  {k}: {{task: {k}, dependencies: [{prev}], max_attempts: 2}}\n")
        chain.append(f"  after{k}: {{task: Pid, dependencies: [{k}]}}\n")
        prev = f"after{k}"
    chain.append(f"  fresh2: {{task: Counts, dependencies: [{prev}]}}\n")
    write(tmp_path / "job.yaml", "config: {max_concurrency: 1}\ntasks:\n" + "".join(chain))
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    cp = checkpoint(tmp_path)["tasks"]
    pid = {name: t["outputs"]["pid"] for name, t in cp.items()}
    assert pid["clean"] == pid["first"]  # nothing left behind: the same process went on
    for k in kinds[:-1]:
        assert pid[f"after{k}"] != pid[k], k
    assert pid["Counts"] != pid[f"after{kinds[kinds.index('Counts') - 1]}"]  # fresh_process: a new one
    assert cp["Counts"]["outputs"]["count"] == cp["fresh2"]["outputs"]["count"] == 1  # no state shared
    first_try = next(line for line in journal(tmp_path) if line.startswith("FailsOnce.1 pid ")).split()[2]
    assert cp["FailsOnce"]["attempts"] == 2 and int(first_try) != pid["FailsOnce"]  # a failed attempt's process ends
    assert not alive(cp["Child"]["outputs"]["child"])  # what the task left running was ended


def test_a_python_task_in_a_reused_process_times_out_alone(tmp_path: Path) -> None:
    job(tmp_path, "  ok: {task: Succeeds}\n  hang: {task: Hangs, timeout: 1, kill_grace: 2, dependencies: [ok]}\n"
        "  next: {task: Succeeds, dependencies: [ok]}\n", "max_concurrency: 1")
    r = run(tmp_path)
    assert r.returncode == 1
    cp = checkpoint(tmp_path)["tasks"]
    assert cp["hang"]["state"] == "failed" and "timed out after 1s" in r.stdout
    assert cp["next"]["state"] == "succeeded"
    assert "hang:1:abort" in hooks(tmp_path)


def test_a_fork_made_by_task_code_never_speaks_for_the_attempt(tmp_path: Path) -> None:
    write(tmp_path / "tasks" / "forks.py", f'''
import os, time
from jobflow_tui import Task, task

@task
class CarelessFork(Task):
    def run(self):
        if os.fork() == 0:
            time.sleep(0.2)
            return {{"who": "the fork"}}  # returns instead of exiting
        os.wait()
        return {{"who": "the task"}}

@task
class ForkThenHang(Task):
    def on_abort(self):
        with open("{tmp_path}/aborts", "a") as f:
            f.write(f"{{os.getpid()}}\\n")
    def run(self):
        if os.fork() == 0:
            time.sleep(60)
        time.sleep(60)
''')
    write(tmp_path / "job.yaml", """
        tasks:
          careless: {task: CarelessFork}
          after: {task: CarelessFork, dependencies: [careless]}
          hang: {task: ForkThenHang, timeout: 1}
    """)
    r = cli("job.yaml", cwd=tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    cp = checkpoint(tmp_path)["tasks"]
    assert cp["careless"]["state"] == cp["after"]["state"] == "succeeded"
    assert cp["careless"]["outputs"] == cp["after"]["outputs"] == {"who": "the task"}
    records = [line.split()[1] for line in journal(tmp_path) if line.startswith("careless.1 ")]
    assert records == ["pid", "result", "exit"]
    assert cp["hang"]["state"] == "failed" and "timed out" in r.stdout
    assert len((tmp_path / "aborts").read_text().split()) == 1  # on_abort ran once, in the task's process
