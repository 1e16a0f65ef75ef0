"""The Python scheduler's decisions, run natively on CPython against an
in-memory `state`: no component, no cluster. Needs the bindings on the path
(`componentize-py -d wit -w scheduler bindings DIR`) and examples/python;
`scripts/build-python.sh --test` does it all.
"""

import bisect
import json
import unittest

import app
from componentize_py_types import Err
from wit_world.imports.types import (
    Command_Decline,
    Command_Launch,
    Command_Reconcile,
    Command_Revive,
    Command_Suppress,
    Message,
    Offer,
    Resources,
    TaskState,
    TaskStatus,
)

DIGEST = "sha256:" + "0123456789abcdef" * 4
MIB = 1 << 20


class MemoryState:
    """What the host's `state` and `log` imports do, in memory."""

    def __init__(self):
        self.kv = {}
        self.logs = []
        self.refuse_over = None  # refuse values longer than this

    def install(self):
        app.state.get = self.kv.get
        app.state.set = self.set
        app.state.delete = lambda k: self.kv.pop(k, None)
        app.state.list = self.list
        app.log.write = lambda level, msg: self.logs.append((level.name, msg))

    def set(self, key, value):
        if self.refuse_over is not None and len(value) > self.refuse_over:
            raise Err(f"value of {len(value)} bytes is over the limit")
        self.kv[key] = bytes(value)

    def list(self, prefix, after, limit):
        keys = sorted(k for k in self.kv if k.startswith(prefix))
        start = bisect.bisect_right(keys, after) if after else 0
        return keys[start:start + limit]


def submission(job_id, cpus_milli=500, priority=0, max_attempts=1, **extra):
    body = {
        "job_id": job_id,
        "max_attempts": max_attempts,
        "priority": priority,
        "task": {
            "module_digest": DIGEST,
            "args": ["a"],
            "env": {"K": "V"},
            "resources": {"cpus_milli": cpus_milli, "mem_bytes": 64 * MIB},
        },
    }
    body.update(extra)
    return Message("submit", "alice", json.dumps(body).encode())


def offer(oid, cpus_milli, mem=1024 * MIB, scalars=()):
    return Offer(oid, "agent-" + oid, "localhost",
                 Resources(cpus_milli, mem, 0, list(scalars)), [])


def status(task_id, state):
    return TaskStatus(task_id, state, "exited", 1, None, 0, None, False)


def launched(cmds):
    return [(c.value.offer_ids, [t.task_id for t in c.value.tasks])
            for c in cmds if isinstance(c, Command_Launch)]


class SchedulerTest(unittest.TestCase):
    def setUp(self):
        self.host = MemoryState()
        self.host.install()
        self.w = app.WitWorld()

    def submit(self, *args, **kwargs):
        reply = self.w.message(submission(*args, **kwargs))
        self.assertEqual(reply.body, b"")
        self.assertEqual(reply.commands, [Command_Revive()])

    def summary(self):
        reply = self.w.message(Message("user", "alice", b"status"))
        return json.loads(reply.body)

    def test_submit_queues_and_offers_launch_in_order(self):
        for j in ["job-1", "job-2", "job-3"]:
            self.submit(j)
        self.assertEqual(self.summary(), {"queued": 3, "running": 0, "lang": "python"})
        cmds = self.w.offers([offer("o1", 1000), offer("o2", 500), offer("o3", 100)])
        self.assertEqual(launched(cmds), [(["o1"], ["job-1.1", "job-2.1"]), (["o2"], ["job-3.1"])])
        self.assertIn(Command_Decline(app.Decline(["o3"], app.IDLE_REFUSE_SECONDS)), cmds)
        self.assertEqual(cmds[-1], Command_Suppress())
        self.assertEqual(self.summary(), {"queued": 0, "running": 3, "lang": "python"})
        task = [c for c in cmds if isinstance(c, Command_Launch)][0].value.tasks[0]
        self.assertEqual((task.args, task.env, task.name), (["a"], [("K", "V")], "job-1"))
        self.assertEqual(task.resources.mem_bytes, 64 * MIB)

    def test_what_does_not_fit_waits_and_offers_keep_coming(self):
        self.submit("big", cpus_milli=4000)
        self.submit("small")
        cmds = self.w.offers([offer("o1", 1000)])
        self.assertEqual(launched(cmds), [(["o1"], ["small.1"])])
        self.assertNotIn(Command_Suppress(), cmds)
        self.assertEqual(self.summary()["queued"], 1)

    def test_higher_priority_first_then_submission_order(self):
        self.submit("low", priority=-1)
        self.submit("a")
        self.submit("urgent", priority=5)
        self.submit("b")
        cmds = self.w.offers([offer("o1", 1500)])
        self.assertEqual(launched(cmds), [(["o1"], ["urgent.1", "a.1", "b.1"])])

    def test_scalars_must_fit(self):
        gpu = {"task": {"module_digest": DIGEST,
                        "resources": {"cpus_milli": 100, "scalars_milli": {"gpus": 1000}}}}
        self.w.message(Message("submit", "alice", json.dumps({"job_id": "g", **gpu}).encode()))
        self.assertEqual(launched(self.w.offers([offer("o1", 1000)])), [])
        cmds = self.w.offers([offer("o2", 1000, scalars=[("gpus", 2000)])])
        self.assertEqual(launched(cmds), [(["o2"], ["g.1"])])

    def test_terminal_updates_end_or_retry(self):
        self.submit("once")
        self.submit("twice", max_attempts=2)
        self.w.offers([offer("o1", 2000)])
        self.assertEqual(self.w.status_update(status("once.1", TaskState.RUNNING)), [])
        self.assertEqual(self.w.status_update(status("once.1", TaskState.FINISHED)), [])
        self.assertEqual(self.w.status_update(status("twice.1", TaskState.FAILED)), [Command_Revive()])
        self.assertEqual(self.summary(), {"queued": 1, "running": 0, "lang": "python"})
        cmds = self.w.offers([offer("o2", 2000)])
        self.assertEqual(launched(cmds), [(["o2"], ["twice.2"])])
        self.assertEqual(self.w.status_update(status("twice.2", TaskState.LOST)), [])
        self.assertEqual(self.summary(), {"queued": 0, "running": 0, "lang": "python"})
        self.assertEqual(self.host.kv.keys(), {"seq"})
        # Updates about tasks it does not know (redelivered) are ignored.
        self.assertEqual(self.w.status_update(status("twice.2", TaskState.FAILED)), [])

    def test_the_same_job_twice_is_one_job(self):
        self.submit("dup")
        self.submit("dup")
        self.assertEqual(self.summary()["queued"], 1)

    def test_registered_reconciles_running_and_revives_only_with_work(self):
        from wit_world.imports.types import Registration
        reg = Registration("fw-1", "py", "default", [], True)
        self.assertEqual(self.w.registered(reg), [Command_Suppress()])
        self.submit("r1")
        self.submit("r2", cpus_milli=9000)
        self.w.offers([offer("o1", 1000)])
        self.assertEqual(self.w.registered(reg), [Command_Reconcile(["r1.1"]), Command_Revive()])

    @staticmethod
    def body(**fields):
        """A submission with `fields` set in its task (or at the top)."""
        job = {"job_id": "x", "task": {"module_digest": DIGEST}}
        for k, v in fields.items():
            (job if k in ("priority", "max_attempts") else job["task"])[k] = v
        return json.dumps(job).encode()

    def test_bad_messages_are_refused(self):
        for body in [b"not json", b"[]", b'{"job_id":"x"}',
                     json.dumps({"job_id": ".x", "task": {"module_digest": DIGEST}}).encode(),
                     json.dumps({"job_id": "x", "task": {"module_digest": "md5:1"}}).encode(),
                     self.body(resources={"cpus_milli": -1}),
                     self.body(resources={"mem_bytes": "64MiB"}),
                     self.body(resources={"scalars_milli": {"gpus": 1.5}}),
                     self.body(args=["a", 1]),
                     self.body(env={"K": 2}),
                     self.body(limits={"fuel": True}),
                     self.body(priority=1 << 31),
                     self.body(max_attempts=-1)]:
            with self.assertRaises(Err):
                self.w.message(Message("submit", "alice", body))
        with self.assertRaises(Err) as e:
            self.w.message(Message("other", "alice", b""))
        self.assertIn("unknown message kind", e.exception.value)
        self.assertEqual(self.host.kv, {})

    def test_missing_and_null_fields_take_defaults(self):
        body = {"job_id": "n", "name": None, "max_attempts": None, "priority": None,
                "task": {"module_digest": DIGEST, "args": None, "env": None,
                         "resources": None, "limits": {"fuel": None}}}
        self.w.message(Message("submit", "alice", json.dumps(body).encode()))
        cmds = self.w.offers([offer("o1", 1000)])
        task = [c for c in cmds if isinstance(c, Command_Launch)][0].value.tasks[0]
        self.assertEqual((task.task_id, task.name, task.args, task.env), ("n.1", "n", [], []))
        self.assertEqual((task.resources.cpus_milli, task.limits.fuel), (0, 0))

    def test_a_job_too_large_to_keep_is_refused(self):
        self.host.refuse_over = 1000
        with self.assertRaises(Err) as e:
            self.w.message(submission("huge", name="y" * 2000))
        self.assertIn("too large to queue", e.exception.value)


if __name__ == "__main__":
    unittest.main()
