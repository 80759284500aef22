"""``python -m <module> <args>`` for the tests, without paying the interpreter's start each time.

Starting Python and importing torch, Lightning, torchmetrics, timm and albumentations takes 5 to
15 s on a 2-core CPU, more than most of the CLI runs the tests make. So one server process
imports them once, and every call is a ``fork`` of it that runs the module as ``python -m``
would (``runpy``, ``sys.argv``, the working directory and environment of the call, stdout and
stderr captured at file descriptors 1 and 2, ``atexit`` handlers, the exit status). Each call is
its own process: nothing of one run (Hydra's global state, logging handlers, signal handlers,
torch's thread pool) reaches the next.

The server never runs a torch operation before it forks, so no OpenMP thread pool exists to be
inherited, and what its imports made (temporary dirs) stays the server's: a call's exit does not
clean it up. What is decided when a module is *imported* cannot follow a call's environment, so a
call whose environment sets such a variable (``IMPORT_TIME_ENV``) runs as a plain subprocess.
"""

from __future__ import annotations

import atexit
import json
import os
import select
import subprocess
import sys
import tempfile
from pathlib import Path

# Read by a library as it is imported (huggingface_hub's HF_HOME / HF_HUB_OFFLINE, the
# interpreter's own PYTHON* settings): a call that sets one gets a fresh interpreter.
IMPORT_TIME_ENV = ("HF_", "HUGGINGFACE_", "TRANSFORMERS_", "TORCH_", "CUDA_", "OMP_", "MKL_")
PRELOADED = (  # the libraries, the entry points, and the classes Hydra instantiates by name
    "torch",
    "lightning",
    "timm",
    "albumentations",
    "cfnet.train",
    "cfnet.evaluate",
    "cfnet.predict",
    "cfnet.export",
    "cfnet.stats",
    "cfnet.report",
    "cfnet.prepare",
    "cfnet.lit.checkpoint_io",
    "cfnet.lit.reports",
    "cfnet.lit.wandb_logging",
)

_SERVER = r"""
import atexit, importlib, inspect, json, os, runpy, sys, traceback, weakref
register, at_exit = atexit.register, []
atexit.register = lambda func, *a, **k: at_exit.append((func, a, k)) or register(func, *a, **k)
for name in json.loads(sys.argv[1]):
    importlib.import_module(name)
atexit.register = register
requests, replies = sys.stdin, os.fdopen(os.dup(1), "w")
os.dup2(2, 1)  # nothing but replies on the reply pipe
for line in requests:
    call = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the call: a process of its own, as `python -m <module> <args>`
        code = 1
        # What the server made as it imported (wandb's media temp dir, ...) is the server's to
        # clean up at its exit, not every call's: a fresh interpreter would make its own. The
        # imports' exit handlers are kept but those bound to such an object.
        for finalizer in list(weakref.finalize._registry):
            finalizer.atexit = False
        atexit._clear()
        for func, a, k in at_exit:
            if not (inspect.ismethod(func) and not isinstance(func.__self__, type)):
                atexit.register(func, *a, **k)
        try:
            out = os.open(call["stdout"], os.O_WRONLY)
            err = os.open(call["stderr"], os.O_WRONLY)
            os.dup2(os.open(os.devnull, os.O_RDONLY), 0); os.dup2(out, 1); os.dup2(err, 2)
            os.chdir(call["cwd"])
            os.environ.clear(); os.environ.update(call["env"])
            sys.path[:0] = [p for p in call["env"].get("PYTHONPATH", "").split(os.pathsep) if p]
            sys.argv = [call["module"], *call["args"]]
            try:
                runpy.run_module(call["module"], run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as stop:
                code = stop.code if isinstance(stop.code, int) else (stop.code is not None)
                if isinstance(stop.code, str):
                    print(stop.code, file=sys.stderr)
            except BaseException:
                traceback.print_exc()
            atexit._run_exitfuncs()
            sys.stdout.flush(); sys.stderr.flush()
        finally:
            os._exit(int(code))
    replies.write(json.dumps({"pid": pid}) + "\n"); replies.flush()
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    replies.write(json.dumps({"returncode": code}) + "\n"); replies.flush()
"""


class CliServer:
    """The forking server: ``run(module, args, env, cwd, timeout)`` → CompletedProcess."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = dict(env)  # what the server's imports saw
        self.process = subprocess.Popen(
            [sys.executable, "-c", _SERVER, json.dumps(PRELOADED)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=self.env,
        )

    def serves(self, env: dict[str, str]) -> bool:
        """Whether a call with ``env`` can be a fork: every import-time variable as the server
        had it when it imported the libraries."""
        keys = {k for k in (*env, *self.env) if k.startswith(IMPORT_TIME_ENV)}
        keys |= {"PYTHONWARNINGS"}
        return all(env.get(k) == self.env.get(k) for k in keys)

    def _reply(self, timeout: float) -> dict:
        ready, _, _ = select.select([self.process.stdout], [], [], timeout)
        line = self.process.stdout.readline() if ready else ""
        if not line:
            raise TimeoutError(f"no reply from the CLI server in {timeout:.0f} s")
        return json.loads(line)

    def run(
        self, module: str, args: list[str], env: dict[str, str], cwd: str, timeout: float
    ) -> subprocess.CompletedProcess:
        with tempfile.TemporaryDirectory() as tmp:
            out, err = Path(tmp, "stdout"), Path(tmp, "stderr")
            out.touch(), err.touch()
            call = {"module": module, "args": args, "env": env, "cwd": cwd}
            self.process.stdin.write(
                json.dumps({**call, "stdout": str(out), "stderr": str(err)}) + "\n"
            )
            self.process.stdin.flush()
            pid = self._reply(timeout=600)["pid"]  # the server has imported everything
            try:
                code = self._reply(timeout)["returncode"]
            except TimeoutError:
                os.kill(pid, 9)
                self._reply(60)
                raise subprocess.TimeoutExpired([module, *args], timeout) from None
            return subprocess.CompletedProcess(
                [sys.executable, "-m", module, *args],
                code,
                out.read_text(errors="replace"),
                err.read_text(errors="replace"),
            )

    def close(self) -> None:
        self.process.stdin.close()
        self.process.wait(timeout=30)


_server: CliServer | None = None


def forked_run(
    module: str,
    args: list[str],
    env: dict[str, str],
    cwd: str | Path | None = None,
    timeout: float = 600,
) -> subprocess.CompletedProcess | None:
    """The call (``env``: its whole environment) run by a fork of the server; ``None`` when it
    needs a fresh interpreter: its ``env`` sets an import-time variable (``IMPORT_TIME_ENV``)
    otherwise than the server's, or ``CFNET_TEST_FRESH_INTERPRETERS=1`` asks for one."""
    global _server
    if os.environ.get("CFNET_TEST_FRESH_INTERPRETERS") == "1":
        return None
    if _server is None or _server.process.poll() is not None:
        _server = CliServer({**os.environ, "PYTHONWARNINGS": "ignore"})
        atexit.register(_server.close)
    if not _server.serves(env):
        return None
    return _server.run(module, args, env, str(cwd or os.getcwd()), timeout)
