//! CPU time per task, and the CPU quota that makes a task's `--cpus` hold
//! among the tasks of one agent.
//!
//! A task is a future that tokio may poll on any worker thread, so CPU time
//! is charged per poll: the calling thread's CPU clock
//! (`CLOCK_THREAD_CPUTIME_ID`) is read before and after a poll of the
//! task's call into WebAssembly (host functions such as WASI run inside
//! those polls and count; work WASI hands to tokio's blocking pool, such as
//! file reads, does not). That clock is a system call (about 2 µs each on
//! this kind of VM, a fifth of a trivial task's whole launch), so a task
//! starts out charged the wall time of its polls, read from the vDSO
//! clock, and switches to the thread clock for good once a poll takes
//! longer than [`PRECISE_AFTER`]. A short poll's wall time is its CPU time
//! unless the thread was preempted inside it; the one poll that reveals a
//! long-running task is charged its wall time, so a task is overcharged by
//! at most one poll (one epoch tick, as a busy task yields at every tick).
//!
//! The quota is a token bucket, the in-process equivalent of a cgroup's
//! `cpu.max`: a task earns `cpus` seconds of CPU per second of wall time, may
//! bank at most one [`CpuQuota::PERIOD`] of them, and when it has spent
//! more than it earned it is not polled again until the debt is paid. A
//! task yields at every epoch tick, so it overdraws by at most one tick,
//! and that overdraft is paid back by waiting longer. Like `cpu.max` it is a
//! cap, not a weight: a task is held to its `cpus` even on an idle agent,
//! which keeps its running time independent of its neighbours. Tasks
//! without a quota are never delayed (they still yield at every tick).

use std::future::{Future, poll_fn};
use std::pin::{Pin, pin};
use std::task::ready;
use std::time::{Duration, Instant};
use tokio::time::Sleep;

/// Polls shorter than this are charged their wall time until a longer one
/// makes the meter read the thread's CPU clock around every poll.
pub(crate) const PRECISE_AFTER: Duration = Duration::from_micros(200);

/// CPU time used by the calling thread so far.
pub(crate) fn thread_cpu_time() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Duration::new(
        t.tv_sec.max(0) as u64,
        t.tv_nsec.clamp(0, 999_999_999) as u32,
    )
}

/// A task's share of the agent's processors: `cpus_milli` thousandths of
/// a cpu, enforced as a quota per [`PERIOD`](CpuQuota::PERIOD).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CpuQuota {
    cpus_milli: u64,
}

impl CpuQuota {
    /// The window of the quota: the most CPU a task can bank while idle
    /// is its share of one period, so a burst after a pause is bounded.
    pub const PERIOD: Duration = Duration::from_millis(100);

    /// A quota of `cpus_milli` thousandths of a cpu; `None` for 0 (no quota).
    pub fn from_milli(cpus_milli: u64) -> Option<CpuQuota> {
        (cpus_milli > 0).then_some(CpuQuota { cpus_milli })
    }

    /// Thousandths of a cpu.
    pub fn cpus_milli(self) -> u64 {
        self.cpus_milli
    }

    /// CPU time allowed per [`PERIOD`](CpuQuota::PERIOD).
    pub fn per_period(self) -> Duration {
        let nanos = Self::PERIOD.as_nanos() as u64;
        Duration::from_nanos(nanos.saturating_mul(self.cpus_milli) / 1000)
    }

    /// `(quota, period)` in microseconds, as cgroup v2's `cpu.max` (and
    /// v1's `cpu.cfs_quota_us` / `cpu.cfs_period_us`) take them: the same
    /// budget the in-process throttle enforces, for an executor that puts
    /// the task in a cgroup instead.
    pub fn cfs_quota_us(self) -> (u64, u64) {
        (
            self.per_period().as_micros() as u64,
            Self::PERIOD.as_micros() as u64,
        )
    }
}

/// A task's CPU bookkeeping: time used, time held back by its quota, and
/// the quota's bucket.
#[derive(Debug)]
pub(crate) struct CpuMeter {
    used: Duration,
    throttled: Duration,
    bucket: Option<Bucket>,
    /// Whether polls are measured with the thread CPU clock (after one
    /// took longer than [`PRECISE_AFTER`]) rather than by wall time.
    precise: bool,
}

#[derive(Debug)]
struct Bucket {
    milli: i128,
    /// Nanoseconds of CPU the task may still use; negative: a debt.
    tokens: i128,
    /// At most this many banked.
    capacity: i128,
    refilled: Instant,
}

impl CpuMeter {
    pub(crate) fn new(quota: Option<CpuQuota>) -> CpuMeter {
        CpuMeter {
            used: Duration::ZERO,
            throttled: Duration::ZERO,
            precise: false,
            bucket: quota.map(|q| {
                let capacity = q.per_period().as_nanos() as i128;
                Bucket {
                    milli: i128::from(q.cpus_milli),
                    tokens: capacity,
                    capacity,
                    refilled: Instant::now(),
                }
            }),
        }
    }

    /// CPU time charged so far.
    pub(crate) fn used(&self) -> Duration {
        self.used
    }

    /// Wall time the task was held back by its quota.
    pub(crate) fn throttled(&self) -> Duration {
        self.throttled
    }

    fn charge(&mut self, cpu: Duration) {
        self.used += cpu;
        if let Some(b) = &mut self.bucket {
            b.tokens -= cpu.as_nanos() as i128;
        }
    }

    /// How long the task must wait before its next poll, if it is in debt.
    fn must_wait(&mut self, now: Instant) -> Option<Duration> {
        let b = self.bucket.as_mut()?;
        let elapsed = now.saturating_duration_since(b.refilled).as_nanos() as i128;
        b.refilled = now;
        b.tokens = (b.tokens + elapsed * b.milli / 1000).min(b.capacity);
        (b.tokens < 0).then(|| {
            let wait_ns = (-b.tokens * 1000 / b.milli).max(1);
            Duration::from_nanos(u64::try_from(wait_ns).unwrap_or(u64::MAX))
        })
    }
}

/// Runs `call`, charging the thread CPU time of each of its polls to
/// `meter` and, while the task is over its quota, sleeping instead of
/// polling it.
pub(crate) async fn accounted<F: Future>(call: F, meter: &mut CpuMeter) -> F::Output {
    let mut call = pin!(call);
    let mut pause: Option<(Pin<Box<Sleep>>, Instant)> = None;
    poll_fn(move |cx| {
        loop {
            if let Some((sleep, since)) = &mut pause {
                ready!(sleep.as_mut().poll(cx));
                meter.throttled += since.elapsed();
                pause = None;
            }
            match meter.must_wait(Instant::now()) {
                Some(wait) => pause = Some((Box::pin(tokio::time::sleep(wait)), Instant::now())),
                None => break,
            }
        }
        let started = Instant::now();
        let before = meter.precise.then(thread_cpu_time);
        let polled = call.as_mut().poll(cx);
        let used = match before {
            Some(before) => thread_cpu_time().saturating_sub(before),
            None => {
                let wall = started.elapsed();
                meter.precise = wall >= PRECISE_AFTER;
                wall
            }
        };
        meter.charge(used);
        polled
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quota_figures() {
        assert_eq!(CpuQuota::from_milli(0), None);
        let q = CpuQuota::from_milli(250).unwrap();
        assert_eq!(q.per_period(), Duration::from_millis(25));
        assert_eq!(q.cfs_quota_us(), (25_000, 100_000));
    }

    #[test]
    fn a_task_in_debt_waits_until_it_is_paid() {
        let mut m = CpuMeter::new(CpuQuota::from_milli(500));
        let t0 = Instant::now();
        assert_eq!(m.must_wait(t0), None);
        // 50 ms banked; spend 70 ms: 20 ms in debt, earned back at 0.5 cpu.
        m.charge(Duration::from_millis(70));
        assert_eq!(m.must_wait(t0), Some(Duration::from_millis(40)));
        assert_eq!(m.must_wait(t0 + Duration::from_millis(40)), None);
        // Banking stops at one period's worth.
        assert_eq!(m.must_wait(t0 + Duration::from_secs(10)), None);
        m.charge(Duration::from_millis(50));
        assert_eq!(m.must_wait(t0 + Duration::from_secs(10)), None);
        m.charge(Duration::from_millis(1));
        assert!(m.must_wait(t0 + Duration::from_secs(10)).is_some());
        assert_eq!(m.used(), Duration::from_millis(121));
    }

    #[test]
    fn no_quota_never_waits() {
        let mut m = CpuMeter::new(None);
        m.charge(Duration::from_secs(100));
        assert_eq!(m.must_wait(Instant::now()), None);
    }

    #[test]
    fn the_thread_clock_counts_work() {
        let before = thread_cpu_time();
        let mut x = 0u64;
        while thread_cpu_time() - before < Duration::from_millis(5) {
            x = x.wrapping_add(1);
        }
        assert!(x > 0);
    }
}
