"""A FIFO batch scheduler for wasmesos, written in Python.

componentize-py turns this module into a component of the
`wasmesos:scheduler@0.1.0` world (see wit/scheduler.wit and README.md
beside this file). It does what the built-in `jobs` framework does, more
simply: "submit" messages queue jobs in durable `state`; offers launch the
queued jobs that fit (attempt N of job J is task `J.N`); terminal status
updates end a job or, while it has attempts left, queue it again; "user"
messages get a summary of the queue.

Memory is only a cache (the master may start a fresh instance before any
event), so everything lives in `state`:

| key                                  | value                                  |
|--------------------------------------|----------------------------------------|
| `seq`                                | the next submission number             |
| `q/<rank:08x>/<seq:016x>/<job-id>`   | an entry waiting for an offer          |
| `run/<task-id>`                      | an entry launched and not yet terminal |
| `job/<job-id>`                       | the key the job is under now           |

An entry is `{"job": <submission>, "attempt": N, "seq": S}`. The rank puts
higher priorities first and the sequence number keeps submission order
within a priority; a retry keeps its sequence number, so it goes back to
its old place in the queue.
"""

import json
import re

import wit_world
from componentize_py_types import Err
from wit_world.imports import log, state
from wit_world.imports.types import (
    Command_Decline,
    Command_Launch,
    Command_Reconcile,
    Command_Revive,
    Command_Suppress,
    Decline,
    Launch,
    Level,
    Limits,
    Reply,
    Resources,
    TaskInfo,
    TaskState,
)

QUEUE = "q/"
RUNNING = "run/"
JOBS = "job/"
SEQ = "seq"
# Keys read per `state.list` call.
PAGE = 100
# Queue entries looked at per offers callback: Python is slower than Rust,
# and this bounds a callback's fuel and time however long the queue is.
SCAN_LIMIT = 500
# Offers are declined for this long when nothing waits (we also suppress)...
IDLE_REFUSE_SECONDS = 5.0
# ...and for this long when queued jobs did not fit: come back soon.
BUSY_REFUSE_SECONDS = 1.0
# Task ids per reconcile command.
CHUNK = 1000
# The longest job id that leaves room for ".N" in a 128-character task id.
MAX_JOB_ID = 128 - 1 - 10
JOB_ID = re.compile(r"[A-Za-z0-9._-]+")
DIGEST = re.compile(r"sha256:[0-9a-f]{64}")
PRIORITY_BIAS = 1 << 31

DONE = {TaskState.FINISHED, TaskState.KILLED}
FAILED = {TaskState.FAILED, TaskState.ERROR, TaskState.LOST}


# --- durable state -------------------------------------------------------


def get_json(key):
    raw = state.get(key)
    return None if raw is None else json.loads(raw)


# Parsed queue entries by their stored bytes. Memory is only a cache: an
# entry is looked up by exactly what `state` holds now, so a fresh instance
# or a dropped write can never make it stale. It spares the offers callback
# parsing JSON for every waiting job on every offer. It is bounded by the
# bytes it keys on (parsed, they take a few times more), far below the
# host's memory cap, and starts over when full.
_parsed = {}
_parsed_bytes = 0
CACHE_BYTES = 4 << 20


def get_entry(key):
    global _parsed_bytes
    raw = state.get(key)
    if raw is None:
        return None
    entry = _parsed.get(raw)
    if entry is None:
        if _parsed_bytes + len(raw) > CACHE_BYTES:
            _parsed.clear()
            _parsed_bytes = 0
        entry = _parsed[raw] = json.loads(raw)
        entry["need"] = need_of(entry["job"])
        _parsed_bytes += len(raw)
    return entry


def set_json(key, value):
    # Raises componentize_py_types.Err when the host refuses the write; left
    # unhandled, that traps the callback and the master drops its writes.
    state.set(key, json.dumps(value, separators=(",", ":")).encode())


def keys(prefix):
    """The keys under `prefix`, in order, read a page at a time."""
    after = ""
    while True:
        page = state.list(prefix, after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = page[-1]


def count(prefix):
    return sum(1 for _ in keys(prefix))


def queue_key(entry):
    job = entry["job"]
    rank = PRIORITY_BIAS - 1 - job["priority"]
    return f"{QUEUE}{rank:08x}/{entry['seq']:016x}/{job['job_id']}"


def task_id(entry):
    return f"{entry['job']['job_id']}.{entry['attempt']}"


def enqueue(entry):
    key = queue_key(entry)
    set_json(key, entry)
    set_json(JOBS + entry["job"]["job_id"], key)


def forget(job_id):
    state.delete(JOBS + job_id)


def info(msg):
    log.write(Level.INFO, msg)


def warn(msg):
    log.write(Level.WARN, msg)


# --- submissions ---------------------------------------------------------


def parse_submission(body):
    """The job in a "submit" body, with defaults filled in, or a reason."""
    try:
        job = json.loads(body)
    except ValueError as e:
        return None, f"invalid submission: {e}"
    if not isinstance(job, dict) or not isinstance(job.get("task"), dict):
        return None, "invalid submission: expected an object with a task"
    job_id = job.get("job_id")
    if (
        not isinstance(job_id, str)
        or not JOB_ID.fullmatch(job_id)
        or job_id.startswith(".")
        or len(job_id) > MAX_JOB_ID
    ):
        return None, (
            f"invalid submission: job_id {job_id!r} must be 1 to {MAX_JOB_ID} "
            "characters of [A-Za-z0-9._-], not starting with '.'"
        )
    task = job["task"]
    digest = task.get("module_digest")
    if not isinstance(digest, str) or not DIGEST.fullmatch(digest):
        return None, "invalid submission: module_digest must be sha256:<64 hex digits>"
    try:
        return checked(job, job_id, task, digest), None
    except (TypeError, ValueError, AttributeError) as e:
        # Caught here rather than when a launch fails to convert: a job
        # that cannot become a task would trap every offers callback.
        return None, f"invalid submission: {e}"


def uint(v, bits=64):
    v = v or 0
    if type(v) is not int or not 0 <= v < 1 << bits:
        raise ValueError(f"{v!r} is not a u{bits}")
    return v


def strings(v):
    if not all(type(s) is str for s in v):
        raise ValueError(f"{v!r} is not a list of strings")
    return list(v)


def checked(job, job_id, task, digest):
    """The job with defaults filled in and every value of the right type."""
    res = task.get("resources") or {}
    lim = task.get("limits") or {}
    env = task.get("env") or {}
    scalars = res.get("scalars_milli") or {}
    priority = job.get("priority") or 0
    if type(priority) is not int or not -(1 << 31) <= priority < 1 << 31:
        raise ValueError(f"priority {priority!r} is not an i32")
    return {
        "job_id": job_id,
        "name": strings([job.get("name") or job_id])[0],
        "max_attempts": max(1, uint(job.get("max_attempts"), 32)),
        "priority": priority,
        "task": {
            "module_digest": digest,
            "args": strings(task.get("args") or []),
            "env": dict(zip(strings(env.keys()), strings(env.values()))),
            "resources": {
                "cpus_milli": uint(res.get("cpus_milli")),
                "mem_bytes": uint(res.get("mem_bytes")),
                "disk_bytes": uint(res.get("disk_bytes")),
                "scalars_milli": {
                    k: uint(v) for k, v in zip(strings(scalars.keys()), scalars.values())
                },
            },
            "limits": {
                "fuel": uint(lim.get("fuel")),
                "timeout_ms": uint(lim.get("timeout_ms")),
                "log_bytes": uint(lim.get("log_bytes")),
            },
        },
    }


def submit(body):
    job, why = parse_submission(body)
    if why:
        raise Err(why)
    job_id = job["job_id"]
    # The same job twice (a client retrying) is one job.
    if state.get(JOBS + job_id) is None:
        seq = get_json(SEQ) or 0
        try:
            enqueue({"job": job, "attempt": 1, "seq": seq})
        except Err as e:
            raise Err(f"job {job_id} is too large to queue: {e.value}")
        set_json(SEQ, seq + 1)
        info(f"job {job_id} queued")
    return Reply(b"", [Command_Revive()])


def summary():
    return {
        "queued": count(QUEUE),
        "running": count(RUNNING),
        "lang": "python",
    }


# --- resources -----------------------------------------------------------


def need_of(job):
    """What one attempt needs, as [cpus, mem, disk, {scalar: milli}]."""
    r = job["task"]["resources"]
    scalars = {k: v for k, v in r["scalars_milli"].items() if v}
    return [r["cpus_milli"], r["mem_bytes"], r["disk_bytes"], scalars]


def have_of(offer):
    r = offer.resources
    scalars = {}
    for name, milli in r.scalars_milli:
        scalars[name] = scalars.get(name, 0) + milli
    return [r.cpus_milli, r.mem_bytes, r.disk_bytes, scalars]


def fits(need, have):
    return (
        all(n <= h for n, h in zip(need[:3], have[:3]))
        and all(v <= have[3].get(k, 0) for k, v in need[3].items())
    )


def take(need, have):
    for i in range(3):
        have[i] -= need[i]
    for k, v in need[3].items():
        have[3][k] -= v


def is_empty(have):
    return all(v == 0 for v in have[:3]) and all(v == 0 for v in have[3].values())


def task_info(entry):
    job, t = entry["job"], entry["job"]["task"]
    cpus, mem, disk, scalars = need_of(job)
    return TaskInfo(
        task_id=task_id(entry),
        name=job["name"],
        module_digest=t["module_digest"],
        args=list(t["args"]),
        env=sorted(t["env"].items()),
        resources=Resources(cpus, mem, disk, sorted(scalars.items())),
        limits=Limits(
            t["limits"]["fuel"], t["limits"]["timeout_ms"], t["limits"]["log_bytes"]
        ),
    )


# --- the world's exports -------------------------------------------------


class WitWorld(wit_world.WitWorld):
    def registered(self, info_):
        # Learn how attempts launched before a restart ended, by name: an
        # empty reconcile would only answer for tasks still running.
        running = [k[len(RUNNING):] for k in keys(RUNNING)]
        out = [
            Command_Reconcile(running[i:i + CHUNK])
            for i in range(0, len(running), CHUNK)
        ]
        waiting = bool(state.list(QUEUE, "", 1))
        out.append(Command_Revive() if waiting else Command_Suppress())
        return out

    def offers(self, offers):
        left = [have_of(o) for o in offers]
        tasks = [[] for _ in offers]
        waiting = False  # queued jobs remain after this round
        scanned = 0
        for key in keys(QUEUE):
            if scanned == SCAN_LIMIT or all(is_empty(h) for h in left):
                waiting = True
                break
            scanned += 1
            entry = get_entry(key)
            if entry is None:
                continue
            need = entry["need"]
            i = next((i for i, h in enumerate(left) if fits(need, h)), None)
            if i is None:
                waiting = True
                continue
            take(need, left[i])
            entry = {k: v for k, v in entry.items() if k != "need"}
            run_key = RUNNING + task_id(entry)
            set_json(run_key, entry)
            set_json(JOBS + entry["job"]["job_id"], run_key)
            state.delete(key)
            tasks[i].append(task_info(entry))

        out, unused = [], []
        for offer, launched in zip(offers, tasks):
            if launched:
                out.append(Command_Launch(Launch([offer.id], launched)))
            else:
                unused.append(offer.id)
        if unused:
            refuse = BUSY_REFUSE_SECONDS if waiting else IDLE_REFUSE_SECONDS
            out.append(Command_Decline(Decline(unused, refuse)))
        if not waiting:
            out.append(Command_Suppress())
        return out

    def offer_rescinded(self, offer_id):
        return []  # offers are never held

    def status_update(self, status):
        entry = get_json(RUNNING + status.task_id)
        if entry is None:
            return []  # already forgotten, or not ours
        job_id = entry["job"]["job_id"]
        if status.state in DONE:
            info(f"job {job_id}: {status.task_id} {status.state.name.lower()}")
            state.delete(RUNNING + status.task_id)
            forget(job_id)
            return []
        if status.state in FAILED:
            state.delete(RUNNING + status.task_id)
            why = f"{status.task_id} {status.state.name.lower()}: {status.message}"
            if entry["attempt"] < entry["job"]["max_attempts"]:
                warn(f"job {job_id}: {why}; retrying")
                entry["attempt"] += 1
                enqueue(entry)
                return [Command_Revive()]
            warn(f"job {job_id}: {why}; giving up after {entry['attempt']} attempt(s)")
            forget(job_id)
        return []

    def message(self, msg):
        if msg.kind == "submit":
            return submit(msg.body)
        if msg.kind == "user":
            return Reply(json.dumps(summary()).encode(), [])
        raise Err(f"unknown message kind {msg.kind!r}: this scheduler takes submit and user")

    def agent_lost(self, agent_id):
        return []  # each of the agent's tasks also gets a `lost` update

    def timer(self, id):
        return []
