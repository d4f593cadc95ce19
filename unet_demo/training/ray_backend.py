"""Ray backend: each training run is a detached, named Ray actor that runs the usual worker.

With ``UNET_DEMO_RAY_ADDRESS`` set (or ``JobManager(launcher=RayLauncher(address))``), the job
manager hands queued runs to a Ray cluster instead of starting local processes. Per run:

* `RayLauncher.launch` creates the actor ``_RunActor`` in namespace ``unet_demo``, named after the
  run id, with ``lifetime="detached"`` (a restart of the app does not end it) and
  ``num_cpus=UNET_DEMO_RAY_CPUS_PER_RUN`` (default 1), plus one GPU when the cluster has GPUs.
  Ray places it on a node with those resources free; the launch waits only a few seconds
  (``UNET_DEMO_RAY_PLACE_TIMEOUT``, default 15) to learn the node, never for training.
* The actor starts ``python -m unet_demo.training.worker RUN_DIR`` on its node with
  ``UNET_DEMO_WORKER_BACKEND=ray`` and ``UNET_DEMO_RAY_NODE_ID`` (environment.json records
  both) and exits when that process ends. The worker process gets SIGKILL if the actor's
  process dies (``PR_SET_PDEATHSIG``), so a killed actor or a lost node never leaves training
  running behind.
* Events, checkpoints and the STOP file live in the run folder, so the runs folder must be on
  storage every node and the app can read and write (NFS or similar, mounted at the same path);
  the repository and its virtual environment must be at the same path on every node too.
* `ray_worker_alive` (called by `rundir.worker_alive` for worker.json files that say
  ``"backend": "ray"``) asks the cluster's control store whether the actor lives. When the
  actor died with its node, it appends a `Failed` event saying so; the run resumes from its
  last complete epoch when it is started again with the same run id
  (``JobManager.submit(spec, run_id=...)``).

This module imports Ray only inside functions (the app without Ray never loads it) and never
imports `unet_demo.training.jobs` or `unet_demo.training.rundir` (they import it).

Example:
    >>> launcher = RayLauncher("127.0.0.1:6379")
    >>> launcher.name, launcher.address
    ('ray', '127.0.0.1:6379')
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

from unet_demo.errors import UNetDemoError
from unet_demo.settings import REPO_ROOT
from unet_demo.training import events as ev

logger = logging.getLogger(__name__)

NAMESPACE = "unet_demo"
CPUS_PER_RUN_ENV = "UNET_DEMO_RAY_CPUS_PER_RUN"
PLACE_TIMEOUT_ENV = "UNET_DEMO_RAY_PLACE_TIMEOUT"
DEFAULT_PLACE_TIMEOUT_S = 15.0
RETRY_CONNECT_AFTER_S = 30.0
"""After a failed connection, `ray_worker_alive` answers False for this long without retrying."""
CALL_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 3.0
# rundir's file names (this module may not import rundir, which imports it).
_QUEUED_FILE = "QUEUED"
_WORKER_LOG = "worker.log"
_LIVE_STATES = {"DEPENDENCIES_UNREADY", "PENDING_CREATION", "ALIVE", "RESTARTING"}
_NODE_DIED = 3  # ActorDiedErrorContext.Reason.NODE_DIED (ray/protobuf/common.proto)

_connect_lock = threading.Lock()
_connection: dict[str, Any] = {"address": None, "failed_at": 0.0, "error": ""}
_dead_actors: set[str] = set()
_actor_class = None


# --------------------------------------------------------------------------- settings

def cpus_per_run() -> float:
    """CPUs each run asks Ray for (``UNET_DEMO_RAY_CPUS_PER_RUN``, default 1, > 0).

    Example:
        >>> cpus_per_run() > 0
        True
    """
    value = os.environ.get(CPUS_PER_RUN_ENV, "").strip()
    if not value:
        return 1.0
    try:
        cpus = float(value)
    except ValueError:
        cpus = 0.0
    if cpus <= 0:
        raise UNetDemoError(f"{CPUS_PER_RUN_ENV}={value!r} is not valid. Expected a number of "
                            "CPUs above 0 for each training run, e.g. 1 or 2.")
    return cpus


def place_timeout() -> float:
    """Seconds a launch waits to learn the node (``UNET_DEMO_RAY_PLACE_TIMEOUT``, default 15)."""
    value = os.environ.get(PLACE_TIMEOUT_ENV, "").strip()
    try:
        return max(0.1, float(value)) if value else DEFAULT_PLACE_TIMEOUT_S
    except ValueError:
        return DEFAULT_PLACE_TIMEOUT_S


# --------------------------------------------------------------------------- connection

def connect(address: str) -> None:
    """Connect this process to the Ray cluster at ``address`` once (later calls reuse it).

    A process holds one Ray connection: when it is already connected elsewhere (a test's
    cluster, say), that connection is kept and a log line says so.

    Raises:
        UNetDemoError: Ray is not installed or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as error:  # pragma: no cover - ray is pinned in requirements.txt
        raise UNetDemoError("The Ray backend needs the ray package: pip install "
                            "'ray[train]==2.60.0' (see requirements.txt).") from error
    if not address:
        raise UNetDemoError("No Ray address: set UNET_DEMO_RAY_ADDRESS=HEAD:6379 (see "
                            "docs/scale-out.md).")
    with _connect_lock:
        if ray.is_initialized():
            if _connection["address"] not in (None, address):
                logger.warning("Ray is already connected to %s; using it for %s.",
                               _connection["address"], address)
            return
        try:
            # ray.init waits a minute or more for a head that is not there; a TCP probe
            # answers in at most PROBE_TIMEOUT_S.
            _probe(address)
            ray.init(address=address, namespace=NAMESPACE, ignore_reinit_error=True,
                     log_to_driver=False)
        except Exception as error:
            _connection.update(failed_at=time.monotonic(), error=str(error))
            raise UNetDemoError(
                f"Could not connect to the Ray cluster at {address!r}: {error}. Start it with "
                "`ray start --head --port=6379` (see docs/scale-out.md) or unset "
                "UNET_DEMO_RAY_ADDRESS to train on this machine.") from error
        _connection.update(address=address, failed_at=0.0, error="")


def _probe(address: str) -> None:
    """Raise OSError when nothing listens at ``host:port`` (other address forms pass)."""
    host, _, port = address.rpartition(":")
    if "://" in address or not host or not port.isdigit():
        return
    with socket.create_connection((host.strip("[]"), int(port)), timeout=PROBE_TIMEOUT_S):
        pass


def _try_connect(address: str) -> bool:
    """`connect`, but False (and one log line) instead of an error; retries after 30 s."""
    import ray

    if ray.is_initialized():
        return True
    if not address:
        return False
    if time.monotonic() - _connection["failed_at"] < RETRY_CONNECT_AFTER_S:
        return False
    try:
        connect(address)
    except UNetDemoError as error:
        logger.warning("Ray is unreachable; runs on it are shown as not running: %s", error)
        return False
    return True


# --------------------------------------------------------------------------- the actor

def _exit_with_parent():
    """A ``preexec_fn``: the worker gets SIGKILL when the actor's process dies (Linux only).

    libc is loaded here, in the parent: the child between fork and exec only calls it.
    """
    try:
        import ctypes

        prctl = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def set_death_signal() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return set_death_signal


class _RunActor:
    """Runs one worker process on its node; exits when the process ends (see `RayLauncher`)."""

    def __init__(self, run_dir: str, env: dict[str, str]):
        import ray

        context = ray.get_runtime_context()
        self.node_id = context.get_node_id()
        self.node_ip = ray.util.get_node_ip_address()
        self.hostname = os.uname().nodename
        self.run_dir = Path(run_dir)
        if not (self.run_dir / "config.json").is_file():
            raise UNetDemoError(
                f"Node {self.node_ip} ({self.hostname}) cannot see the run folder "
                f"{self.run_dir}: the runs folder must be on storage every node mounts at the "
                "same path (UNET_DEMO_RUNS_DIR on NFS or similar, see docs/scale-out.md).")
        self.killed = False
        worker_env = dict(os.environ)
        worker_env.update(env)
        worker_env["PYTHONPATH"] = os.pathsep.join(
            [str(REPO_ROOT)] + ([worker_env["PYTHONPATH"]] if worker_env.get("PYTHONPATH")
                                else []))
        worker_env["UNET_DEMO_WORKER_BACKEND"] = "ray"
        worker_env["UNET_DEMO_RAY_NODE_ID"] = self.node_id
        with open(self.run_dir / _WORKER_LOG, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "unet_demo.training.worker", str(self.run_dir)],
                cwd=str(REPO_ROOT), env=worker_env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True,
                preexec_fn=_exit_with_parent())
        self.handle = context.current_actor
        threading.Thread(target=self._exit_when_done, daemon=True).start()

    def _exit_when_done(self) -> None:
        self.process.wait()
        self.handle.finish.remote()

    def finish(self) -> None:
        """End the actor (called by itself once the worker process has exited)."""
        import ray

        ray.actor.exit_actor()

    def describe(self) -> dict[str, Any]:
        """Where it runs: node id, node ip, host name, worker pid."""
        return {"node_id": self.node_id, "node_ip": self.node_ip, "hostname": self.hostname,
                "worker_pid": self.process.pid}

    def poll(self) -> int | None:
        """The worker's exit status, None while it runs."""
        return self.process.poll()

    def terminate(self) -> int | None:
        """SIGKILL the worker's process group; its exit status."""
        self.killed = True
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.process.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            self.process.kill()
        return self.process.wait(timeout=CALL_TIMEOUT_S)


def _remote_class():
    global _actor_class
    if _actor_class is None:
        import ray

        _actor_class = ray.remote(max_restarts=0, max_task_retries=0)(_RunActor)
    return _actor_class


# --------------------------------------------------------------------------- launcher

class RayLauncher:
    """Runs training on a Ray cluster (implements `unet_demo.training.jobs.Launcher`).

    Args:
        address: the head's GCS address, e.g. ``"10.0.0.5:6379"`` (``UNET_DEMO_RAY_ADDRESS``).
        resources: extra custom Ray resources each run asks for (e.g. ``{"big_disk": 1}`` to
            keep runs on nodes started with ``--resources='{"big_disk": 1}'``).

    Nothing connects until the first use, so creating one is free.
    """

    name = "ray"

    def __init__(self, address: str, resources: dict[str, float] | None = None):
        if not address:
            raise UNetDemoError("RayLauncher needs a Ray address such as '10.0.0.5:6379' "
                                "(UNET_DEMO_RAY_ADDRESS or --ray-address).")
        self.address = address
        self.resources = dict(resources or {})

    def _request(self) -> dict[str, float]:
        """What one run asks for: CPU, GPU (when the cluster has one), custom resources."""
        import ray

        request = {"CPU": cpus_per_run(), **self.resources}
        if ray.cluster_resources().get("GPU", 0) >= 1:
            request["GPU"] = 1.0
        return request

    def capacity(self) -> int:
        """How many runs the cluster holds at once (0 while it is unreachable)."""
        if not _try_connect(self.address):
            return 0
        try:
            import ray

            total = ray.cluster_resources()
            request = self._request()
        except Exception as error:  # noqa: BLE001 - the queue simply waits
            logger.warning("Ray cluster %s unreachable, nothing starts: %s", self.address, error)
            return 0
        return max(0, min(int(total.get(key, 0) // amount) for key, amount in request.items()
                          if amount > 0))

    def launch(self, run_dir: Path) -> dict[str, Any]:
        """Create the run's detached actor; return what worker.json records.

        Waits at most `place_timeout` seconds to learn the node; a run still waiting for
        resources then records ``"node": ""`` (environment.json gets it when it starts).
        """
        import ray

        connect(self.address)
        run_dir = Path(run_dir).resolve()
        request = self._request()
        env = {key: value for key, value in os.environ.items()
               if key.startswith("UNET_DEMO_") and key != "UNET_DEMO_RAY_ADDRESS"}
        options = {"name": run_dir.name, "namespace": NAMESPACE, "lifetime": "detached",
                   "num_cpus": request.pop("CPU"), "num_gpus": request.pop("GPU", 0),
                   # The repository is at the same path on every node (docs/scale-out.md).
                   "runtime_env": {"env_vars": {"PYTHONPATH": str(REPO_ROOT)}}}
        if request:
            options["resources"] = request
        begin = time.monotonic()
        actor = self._create(options, str(run_dir), env)
        info: dict[str, Any] = {"backend": self.name, "actor": run_dir.name,
                                "namespace": NAMESPACE, "address": self.address,
                                "actor_id": actor._actor_id.hex(), "node": "", "node_id": "",
                                "cpus": options["num_cpus"], "gpus": options["num_gpus"]}
        try:
            where = ray.get(actor.describe.remote(), timeout=place_timeout())
        except ray.exceptions.GetTimeoutError:
            logger.info("Run %s waits for Ray resources %s; node not known yet.",
                        run_dir.name, options)
            return info
        except ray.exceptions.RayActorError as error:
            # The worker already ended (a run that fails at once), or the actor could not start.
            logger.warning("Ray actor of run %s ended at once: %s", run_dir.name, error)
            _record_start_failure(run_dir, error)
            return info
        info.update(node=where["node_ip"] or where["hostname"], node_id=where["node_id"],
                    hostname=where["hostname"], worker_pid=where["worker_pid"],
                    place_seconds=round(time.monotonic() - begin, 3))
        return info

    def _create(self, options: dict[str, Any], run_dir: str, env: dict[str, str]):
        """The actor; waits a few seconds when an ended actor of this run still holds the name."""
        import ray

        deadline = time.monotonic() + CALL_TIMEOUT_S
        while True:
            try:
                return _remote_class().options(**options).remote(run_dir, env)
            except ValueError as error:  # the name is taken
                old = _get_actor(options["name"])
                status: Any = "ended"
                if old is not None:
                    try:
                        status = ray.get(old.poll.remote(), timeout=CALL_TIMEOUT_S)
                    except Exception:  # noqa: BLE001 - it is ending
                        status = "ended"
                if status is None:
                    raise UNetDemoError(
                        f"Run {options['name']} is already training on Ray.") from error
                if time.monotonic() >= deadline:
                    raise UNetDemoError(f"Could not start run {options['name']} on Ray: "
                                        f"{error}") from error
                time.sleep(0.2)  # the ended actor of an earlier attempt still holds the name

    def kill(self, run_dir: Path, info: dict[str, Any]) -> None:
        """SIGKILL the worker process on its node and end the actor (`ray.kill`)."""
        import ray

        try:
            connect(str(info.get("address") or self.address))
        except UNetDemoError as error:
            logger.warning("Cannot kill run %s: %s", Path(run_dir).name, error)
            return
        actor = _get_actor(str(info.get("actor") or Path(run_dir).name),
                           str(info.get("namespace") or NAMESPACE))
        if actor is None:
            return
        if info.get("actor_id") and actor._actor_id.hex() != info["actor_id"]:
            return  # a newer attempt of the run holds the name now
        with contextlib.suppress(Exception):
            ray.get(actor.terminate.remote(), timeout=CALL_TIMEOUT_S)
        with contextlib.suppress(Exception):
            ray.kill(actor, no_restart=True)
        _wait_dead(actor._actor_id.hex(), CALL_TIMEOUT_S)


def _get_actor(name: str, namespace: str = NAMESPACE):
    """The live actor called ``name``, or None."""
    import ray

    try:
        return ray.get_actor(name, namespace=namespace)
    except ValueError:
        return None


def _actor_record(actor_id: str) -> dict[str, Any]:
    """The control store's record of an actor ({} when unknown)."""
    from ray._private import state

    return state.actors(actor_id=actor_id) or {}


def _wait_dead(actor_id: str, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(Exception):
            if _actor_record(actor_id).get("State") not in _LIVE_STATES:
                _dead_actors.add(actor_id)
                return
        time.sleep(0.1)


def ray_worker_alive(run_dir: Path, info: dict[str, Any]) -> bool:
    """Whether the run's Ray actor (from worker.json ``info``) is alive or waiting to start.

    Never raises: an unreachable cluster counts as not alive (one log line per 30 s). An actor
    that died with its node gets a `Failed` event in the run folder (once), so the run shows as
    failed and can be resumed from its last complete epoch.

    Args:
        run_dir: the run directory.
        info: worker.json contents.

    Example:
        >>> ray_worker_alive(Path("/nonexistent"), {"backend": "ray"})
        False
    """
    actor_id = str(info.get("actor_id") or "")
    if not actor_id or actor_id in _dead_actors:
        return False
    try:
        if not _try_connect(str(info.get("address") or "")):
            return False
        record = _actor_record(actor_id)
    except Exception as error:  # noqa: BLE001 - never break a page over a status check
        logger.warning("Could not ask Ray about run %s: %s", Path(run_dir).name, error)
        return False
    state = record.get("State", "")
    if state in _LIVE_STATES:
        return True
    _dead_actors.add(actor_id)
    if state == "DEAD":
        _record_node_death(Path(run_dir), record, info)
    return False


def _record_node_death(run_dir: Path, record: dict[str, Any], info: dict[str, Any]) -> None:
    """Append a `Failed` event when the actor died because its node died (and nothing ended it)."""
    cause = record.get("DeathCause")
    context = getattr(cause, "actor_died_error_context", None)
    if context is None or getattr(context, "reason", None) != _NODE_DIED:
        return
    if (run_dir / _QUEUED_FILE).is_file():
        return  # queued again (a resume): the old attempt's death is history
    with contextlib.suppress(UNetDemoError, OSError):
        last = ev.last_event(run_dir)
        if isinstance(last, ev.TERMINAL_TYPES):
            return
        epoch = _last_epoch(run_dir)
        node = info.get("node") or context.node_ip_address or "?"
        node_id = str(info.get("node_id") or "")[:12]
        message = (f"The Ray node running this run ({node}{', node ' + node_id if node_id else ''})"
                   f" died, so training stopped. {_resume_hint(epoch)}")
        ev.append_event(run_dir, ev.Failed(message=message))
        logger.warning("Run %s: %s", run_dir.name, message)


def _record_start_failure(run_dir: Path, error: Exception) -> None:
    """A `Failed` event when the actor died before its worker wrote a final event."""
    with contextlib.suppress(UNetDemoError, OSError):
        if isinstance(ev.last_event(run_dir), ev.TERMINAL_TYPES):
            return  # it finished (or failed by itself) before the launch looked
        lines = [line.strip() for line in str(error).splitlines() if line.strip()]
        reason = next((line for line in reversed(lines) if "UNetDemoError" in line),
                      lines[-1] if lines else type(error).__name__)
        ev.append_event(run_dir, ev.Failed(
            message=f"Ray could not start this run on its node: {reason[:500]}"))


def _last_epoch(run_dir: Path) -> int:
    with contextlib.suppress(OSError, ValueError):
        return int(json.loads((run_dir / "state.json").read_text(encoding="utf-8"))
                   .get("epoch", 0) or 0)
    return 0


def _resume_hint(epoch: int) -> str:
    if epoch <= 0:
        return "No epoch had finished; start it again to train from the beginning."
    saved = "Epoch 1 is" if epoch == 1 else f"Epochs 1-{epoch} are"
    return (f"{saved} saved: start the run again with the same run id to resume from epoch "
            f"{epoch + 1}.")


# --------------------------------------------------------------------------- CLI helper

def launcher_for(backend: str, address: str = "") -> RayLauncher | None:
    """The launcher for ``--backend``: a `RayLauncher` for "ray", None for "local".

    None lets `JobManager` use its local worker processes. With "ray" and no ``address``,
    ``UNET_DEMO_RAY_ADDRESS`` is used.

    Args:
        backend: "local" or "ray".
        address: the Ray head address (``--ray-address``).

    Raises:
        UNetDemoError: an unknown backend, or "ray" without any address.

    Example:
        >>> launcher_for("local") is None, launcher_for("ray", "10.0.0.5:6379").address
        (True, '10.0.0.5:6379')
    """
    from unet_demo.settings import ray_address

    choice = (backend or "local").strip().lower()
    if choice == "local":
        return None
    if choice == "ray":
        address = (address or ray_address()).strip()
        if not address:
            raise UNetDemoError("--backend ray needs --ray-address HEAD:6379 (or "
                                "UNET_DEMO_RAY_ADDRESS); start the cluster as docs/scale-out.md "
                                "shows.")
        return RayLauncher(address)
    raise UNetDemoError(f"Unknown backend {backend!r}. Expected 'local' or 'ray'.")
