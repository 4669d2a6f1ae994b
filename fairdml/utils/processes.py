"""Child processes that share the machine: each one's thread budget, and stopping them all with their parent
(a local sweep's `fairdml train` runs, `--jobs N` at a time)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Mapping

# Read by torch (OpenMP) and MKL when the child starts: a run's thread pool is sized before any fairdml code runs.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "MKL_NUM_THREADS")
STOP_GRACE_SECONDS = 10


def cores() -> int:
    """The cores this process may run on (its CPU affinity where the OS says, as a container's cpuset limits it)."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def thread_budget(jobs: int, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The thread variables every run starts with, so that N runs at a time share the cores instead of each
    taking them all. Values the user set are kept (one of the two stands for both). With one run at a time
    nothing is added: torch takes every core as before, and Lightning's DDP launcher, which splits the cores
    among its ranks only when `OMP_NUM_THREADS` is unset, still does."""
    given = {name: environ[name] for name in THREAD_VARIABLES if environ.get(name)}
    if not given and jobs == 1:
        return {}
    share = next(iter(given.values()), str(max(1, cores() // jobs)))
    return {name: given.get(name, share) for name in THREAD_VARIABLES}


def death_signal_hook() -> Callable[[], None] | None:
    """A `preexec_fn` for each child: the kernel sends it SIGTERM when the thread that started it dies, and with
    it when the sweep process dies, even by kill -9 (Linux's PR_SET_PDEATHSIG), so no run goes on training as an
    orphan in a folder a re-run will reuse. Each child is started and waited for by the same pool thread, which
    lives until the child ends. libc is looked up here, in the parent: between fork and exec the child must not
    dlopen, which could wait forever on a lock that another thread of the sweep held at the fork."""
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    prctl = ctypes.CDLL("libc.so.6", use_errno=True).prctl
    pr_set_pdeathsig, sigterm = 1, int(signal.SIGTERM)

    def die_with_parent() -> None:
        prctl(pr_set_pdeathsig, sigterm)

    return die_with_parent


class Children:
    """The sweep's running `fairdml train` processes, so that an interrupted sweep stops every one of them (the
    pool's threads would otherwise keep the sweep alive until each run had finished)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.running: set[subprocess.Popen] = set()
        self.stopping = False
        self.preexec_fn = death_signal_hook()

    def start(self, command: list[str], **popen_options) -> subprocess.Popen | None:
        """Start a run, unless the sweep is stopping (then None)."""
        with self.lock:
            if self.stopping:
                return None
            process = subprocess.Popen(command, preexec_fn=self.preexec_fn, **popen_options)
            self.running.add(process)
            return process

    def wait(self, process: subprocess.Popen) -> int:
        returncode = process.wait()
        with self.lock:
            self.running.discard(process)
        return returncode

    def stop_all(self, grace_seconds: float = STOP_GRACE_SECONDS) -> None:
        """SIGTERM to every running run (Lightning stops at the next step), SIGKILL to any still alive after
        `grace_seconds`; no run starts after this."""
        with self.lock:
            self.stopping = True
            processes = list(self.running)
        for process in processes:
            process.terminate()
        for process in processes:
            try:
                process.wait(grace_seconds)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
