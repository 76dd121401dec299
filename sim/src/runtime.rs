//! A deterministic single-threaded executor on virtual time.
//!
//! Tasks are polled in the order they were woken (FIFO); time only moves when no task
//! can run, straight to the next timer. Nothing depends on the wall clock, thread
//! scheduling or hash order, so one seed gives one run.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use failover_engine::ports::Clock;
use failover_model::Time;

/// A task's future.
pub type TaskFuture = Pin<Box<dyn Future<Output = ()> + Send>>;

#[derive(Default)]
struct TimeInner {
    now: Time,
    seq: u64,
    timers: BinaryHeap<Reverse<(Time, u64)>>,
    wakers: std::collections::BTreeMap<u64, Waker>,
}

/// Virtual time shared by every clock and sleep of a run.
#[derive(Clone, Default)]
pub struct VirtualTime {
    inner: Arc<Mutex<TimeInner>>,
}

impl VirtualTime {
    fn lock(&self) -> MutexGuard<'_, TimeInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The true (global) time in milliseconds.
    pub fn now(&self) -> Time {
        self.lock().now
    }

    /// Register `waker` to be woken at `at`.
    pub fn wake_at(&self, at: Time, waker: Waker) {
        let mut t = self.lock();
        t.seq += 1;
        let seq = t.seq;
        t.timers.push(Reverse((at, seq)));
        t.wakers.insert(seq, waker);
    }

    /// The earliest pending timer.
    pub fn next_timer(&self) -> Option<Time> {
        self.lock().timers.peek().map(|Reverse((at, _))| *at)
    }

    /// Move time to `to` and wake every timer due by then.
    pub fn advance(&self, to: Time) {
        let mut due = Vec::new();
        {
            let mut t = self.lock();
            t.now = t.now.max(to);
            let now = t.now;
            while let Some(Reverse((at, seq))) = t.timers.peek().copied() {
                if at > now {
                    break;
                }
                t.timers.pop();
                if let Some(w) = t.wakers.remove(&seq) {
                    due.push(w);
                }
            }
        }
        for w in due {
            w.wake();
        }
    }

    /// A future that completes at true time `at`.
    pub fn until(&self, at: Time) -> Sleep {
        Sleep {
            time: self.clone(),
            at,
            registered: false,
        }
    }
}

/// A virtual sleep.
pub struct Sleep {
    time: VirtualTime,
    at: Time,
    registered: bool,
}

impl Future for Sleep {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.time.now() >= self.at {
            return Poll::Ready(());
        }
        if !self.registered {
            self.registered = true;
            let at = self.at;
            self.time.wake_at(at, cx.waker().clone());
        }
        Poll::Pending
    }
}

/// One cluster's clocks: a monotonic one (true time plus a skew within the group's
/// `clock_drift_max`, which may grow by steps) and a wall clock (true time plus an
/// offset that the simulator steps by any amount, in either direction).
#[derive(Clone)]
pub struct SimClock {
    time: VirtualTime,
    offsets: Arc<Mutex<ClockOffsets>>,
}

/// The offsets of one cluster's clocks from true time.
#[derive(Clone, Copy, Debug, Default)]
pub struct ClockOffsets {
    /// Monotonic clock: ahead of true time by this much.
    pub mono: Time,
    /// Wall clock: ahead of true time by this much (negative: behind).
    pub wall: i64,
}

impl SimClock {
    /// Clocks with the given offsets; `offsets` is shared with the simulator, which
    /// steps them.
    pub fn new(time: VirtualTime, offsets: Arc<Mutex<ClockOffsets>>) -> SimClock {
        SimClock { time, offsets }
    }

    fn offsets(&self) -> ClockOffsets {
        *self.offsets.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Clock for SimClock {
    fn now(&self) -> Time {
        (self.time.now() as i64 + self.offsets().wall).max(0) as Time
    }

    fn mono(&self) -> Time {
        self.time.now() + self.offsets().mono
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send {
        let at = self.time.now() + duration.as_millis() as Time;
        self.time.until(at)
    }
}

struct TaskWaker {
    id: usize,
    ready: Arc<Mutex<VecDeque<usize>>>,
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut q = self.ready.lock().unwrap_or_else(|e| e.into_inner());
        if !q.contains(&self.id) {
            q.push_back(self.id);
        }
    }
}

/// The executor: a fixed set of task slots, each empty or holding a future.
pub struct Executor {
    slots: Vec<Option<TaskFuture>>,
    generation: Vec<u64>,
    ready: Arc<Mutex<VecDeque<usize>>>,
    wakers: Vec<Waker>,
}

impl Executor {
    /// An executor with `n` task slots.
    pub fn new(n: usize) -> Executor {
        let ready = Arc::new(Mutex::new(VecDeque::new()));
        let wakers = (0..n)
            .map(|id| {
                Waker::from(Arc::new(TaskWaker {
                    id,
                    ready: ready.clone(),
                }))
            })
            .collect();
        Executor {
            slots: (0..n).map(|_| None).collect(),
            generation: vec![0; n],
            ready,
            wakers,
        }
    }

    /// Put a future in slot `id` (dropping what was there) and make it ready.
    pub fn spawn(&mut self, id: usize, f: TaskFuture) {
        self.slots[id] = Some(f);
        self.generation[id] += 1;
        self.wakers[id].wake_by_ref();
    }

    /// Drop the future in slot `id` wherever it is suspended (a crash).
    pub fn kill(&mut self, id: usize) {
        self.slots[id] = None;
        self.generation[id] += 1;
    }

    /// Slot `id` holds a future.
    pub fn alive(&self, id: usize) -> bool {
        self.slots[id].is_some()
    }

    /// Poll one ready task, if any, unless `hold(id)` says it must not run now (a
    /// paused process); held tasks stay ready. Returns the task polled.
    pub fn poll_one(&mut self, hold: impl Fn(usize) -> bool) -> Option<usize> {
        let id = {
            let mut q = self.ready.lock().unwrap_or_else(|e| e.into_inner());
            let pos = q.iter().position(|id| !hold(*id))?;
            q.remove(pos)?
        };
        let Some(f) = self.slots[id].as_mut() else {
            return Some(id);
        };
        let mut cx = Context::from_waker(&self.wakers[id]);
        if f.as_mut().poll(&mut cx).is_ready() {
            self.slots[id] = None;
        }
        Some(id)
    }

    /// Make task `id` ready (after a pause ends).
    pub fn wake(&self, id: usize) {
        self.wakers[id].wake_by_ref();
    }
}
