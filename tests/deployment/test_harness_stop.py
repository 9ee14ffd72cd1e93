"""The deployment harness's stop: what it calls a hard stop, and a stop signal that got lost.

Plain processes stand in for Airflow's components, so these run without a deployment. The
shutdown test trusts ``stop_all() == []``; these check that the list is empty for the right
reasons and says why when it is not.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import psutil

from tests.deployment.airflow_deployment import Component, Deployment, wait_for

#: Exits on the second SIGTERM. The first one it answers the way Airflow's scheduler did in CI
#: when the signal landed inside a weakref callback: SystemExit printed as ignored, then on.
SWALLOWS_FIRST_SIGTERM = """
    import signal, sys, time
    received = []
    def handler(signum, frame):
        received.append(signum)
        if len(received) == 1:
            print("Exception ignored in: <function _collection_gced at 0x7f63a6b0efc0>", file=sys.stderr)
            print("Traceback (most recent call last):", file=sys.stderr)
            print("SystemExit: 0", file=sys.stderr, flush=True)
            return
        sys.exit(0)
    signal.signal(signal.SIGTERM, handler)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
"""
IGNORES_SIGTERM = """
    import signal, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
"""
#: Forks a child it never reaps, then waits for SIGTERM: the child is a zombie when it exits.
LEAVES_A_ZOMBIE = """
    import os, signal, sys, time
    if os.fork() == 0:
        os._exit(0)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(0.5)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
"""
#: Starts a child that ignores SIGTERM and would outlive it.
LEAVES_A_CHILD_RUNNING = """
    import signal, subprocess, sys, time
    child = subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    time.sleep(0.5)
    print("ready", flush=True)
    while True:
        time.sleep(0.05)
"""


def _deployment(tmp_path: Path, name: str, script: str) -> Deployment:
    deployment = Deployment(home=tmp_path, dags=tmp_path)
    log = tmp_path / f"{name}.out"
    with log.open("ab") as out:
        process = subprocess.Popen(
            [sys.executable, "-c", textwrap.dedent(script)],
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    deployment.components[name] = Component(name, process, log)
    wait_for(f"{name} to start", lambda: "ready" in log.read_text(), timeout=30, interval=0.05)
    return deployment


def test_a_swallowed_stop_signal_is_sent_again_and_is_no_hard_stop(tmp_path):
    deployment = _deployment(tmp_path, "scheduler", SWALLOWS_FIRST_SIGTERM)

    assert deployment.stop_all() == []
    stopped = deployment.stopped[0]
    assert stopped.resignalled and stopped.process.returncode == 0


def test_a_component_that_ignores_the_signal_is_a_hard_stop_and_says_so(tmp_path):
    deployment = _deployment(tmp_path, "scheduler", IGNORES_SIGTERM)

    stopped = deployment.stop("scheduler", timeout=2)

    assert stopped.hard_stopped and not stopped.resignalled
    assert stopped.hard_stop_reason == "still running 2 s after signal 15"
    assert not stopped.alive()


def test_a_zombie_child_has_exited_and_is_not_left_running(tmp_path):
    deployment = _deployment(tmp_path, "scheduler", LEAVES_A_ZOMBIE)
    (zombie,) = psutil.Process(deployment.components["scheduler"].pid).children()
    wait_for("the child to exit", lambda: zombie.status() == psutil.STATUS_ZOMBIE, timeout=30, interval=0.05)

    assert deployment.stop_all() == []


def test_a_child_that_outlives_its_component_is_a_hard_stop_and_is_named(tmp_path):
    deployment = _deployment(tmp_path, "worker", LEAVES_A_CHILD_RUNNING)
    (child,) = psutil.Process(deployment.components["worker"].pid).children()

    (reason,) = deployment.stop_all()

    assert reason.startswith(f"worker (left running: ['{child.pid} {sys.executable} -c")
    assert not child.is_running() or child.status() == psutil.STATUS_ZOMBIE
