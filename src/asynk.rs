//! Async receive and send (feature `tokio`): futures that wait on the
//! queue's futex words without a thread per waiting task and without
//! polling (docs/design.md §6, "Async waiters").
//!
//! A task cannot sleep in `FUTEX_WAIT` itself, so each queue handle (shared
//! by its clones) has one *waiter thread* per futex word, started when a
//! task first waits on that word: `shmq-recv-wait` sleeps on `park` for
//! receivers, `shmq-room-wait` on `room` for senders waiting for room. A
//! waiting task
//!
//! 1. sets the word's waiter bit exactly as a blocking waiter does, and
//!    notes the word's value (`seen`, waiter bit set);
//! 2. registers its `Waker` with `seen` in the word's [`Registry`];
//! 3. looks at the queue once more (the blocking waiter's last look);
//! 4. only then returns `Pending`.
//!
//! The waiter thread loads the word and wakes every registered task whose
//! `seen` differs from it (the word moved since that task's last look: a
//! sender published, a slot was freed, or the handle was shut down); if
//! tasks remain, all of them saw the current value, and the thread sleeps
//! in `FUTEX_WAIT` on exactly that value, so any later change wakes it. At
//! the sweep deadline (receivers) or the room re-check (senders) it wakes
//! them all, as a blocking waiter's own timeout would. It holds a handle
//! only while tasks wait and exits once the handle's last clone is dropped,
//! or after [`IDLE_EXIT`] with nobody waiting.
//!
//! Cancellation safety: a lease is taken and handed out in one `poll`, and a
//! send claims, writes and publishes in one `poll`; a future dropped while
//! `Pending` holds nothing but its registration, which its `Drop` removes.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use futures_core::Stream;

use crate::clock::now_ms;
use crate::error::SendError;
use crate::lease::Lease;
use crate::queue::Queue;
use crate::sync::{fence, AtomicU32, Ordering::*};
use crate::wait::futex_wait;

/// How long a waiter thread with nobody waiting lingers before it exits
/// (the next waiting task starts another).
const IDLE_EXIT: Duration = Duration::from_secs(5);

/// The longest a receive waiter thread sleeps without looking at the sweep
/// deadline again (a hostile or stale `sweep_due`; normally the sweep
/// interval, at most 1 s, comes first).
const PARK_RECHECK: Duration = Duration::from_secs(1);

/// How long senders waiting for room sleep at most before they look again
/// (as `send_timeout`'s ROOM_RECHECK: a freer killed between its commit and
/// its wake).
const ROOM_RECHECK: Duration = Duration::from_millis(100);

/// CAS attempts at the waiter bit before parking on whatever value was read
/// (a hostile writer; parking on a stale value returns at once).
const BIT_TRIES: u32 = 64;

// ------------------------------------------------------------------ futures

impl Queue {
    /// Lease one message, waiting (without blocking the thread) until one
    /// is visible. `None` only once the handle is
    /// [shut down](Self::shutdown): like [`incoming`](Self::incoming), a
    /// shut-down handle takes no new work.
    ///
    /// Cancellation-safe: dropping the future (a `select!` branch that lost,
    /// a `tokio::time::timeout` that fired) never leaves a message leased.
    /// The lease is taken in the same `poll` that returns it. For a receive
    /// with a timeout, wrap it: `tokio::time::timeout(d, q.receive_async())`.
    ///
    /// Waiting costs no CPU: the handle's waiter thread sleeps on the
    /// queue's futex word for every waiting task and wakes them when a
    /// sender in any process publishes.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// use std::time::Duration;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let q = Queue::create(dir.path().join("jobs.q"), &Config::default())?;
    /// let worker = tokio::spawn({
    ///     let q = q.clone();
    ///     async move {
    ///         let lease = q.receive_async().await.expect("not shut down");
    ///         assert_eq!(lease.payload(), b"job 1");
    ///         lease.ack()
    ///     }
    /// });
    /// q.send("job 1")?;
    /// worker.await??;
    /// // Nothing to receive: time out.
    /// let idle = tokio::time::timeout(Duration::from_millis(10), q.receive_async()).await;
    /// assert!(idle.is_err());
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// *Feature `tokio`.*
    pub fn receive_async(&self) -> ReceiveFuture<'_> {
        ReceiveFuture {
            queue: self,
            key: None,
        }
    }

    /// Send a message, waiting (without blocking the thread) for room while
    /// the queue is full. The async [`send_blocking`](Self::send_blocking);
    /// `tokio::time::timeout(d, q.send_async(&msg))` is the async
    /// [`send_timeout`](Self::send_timeout).
    ///
    /// Cancellation-safe: the message is sent in one `poll` (the one that
    /// returns its id) or not at all, so a dropped future sent nothing and
    /// the message is still the caller's.
    ///
    /// On a [durable](crate::Config::durable) queue that poll also waits
    /// for the sync (group commit, a millisecond or so on a disk), blocking
    /// the executor's thread meanwhile: in a service where that matters,
    /// send durably from `tokio::task::spawn_blocking`.
    ///
    /// # Errors
    ///
    /// [`SendError::Full`] only once the handle is
    /// [shut down](Self::shutdown); otherwise as [`send`](Self::send).
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use shmq::{Config, Queue};
    /// use std::time::Duration;
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let q = Queue::create(dir.path().join("q"), &Config::default().slots(1))?;
    /// q.send("first")?;
    /// // Full: a send with a deadline gives up, having sent nothing.
    /// let late = tokio::time::timeout(Duration::from_millis(10), q.send_async("second")).await;
    /// assert!(late.is_err());
    /// let consumer = tokio::spawn({
    ///     let q = q.clone();
    ///     async move { q.receive_async().await.unwrap().ack() }
    /// });
    /// // Resumes when the consumer's ack frees the slot.
    /// q.send_async("second").await?;
    /// consumer.await??;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// *Feature `tokio`.*
    pub fn send_async<'a, M: AsRef<[u8]> + ?Sized>(&'a self, msg: &'a M) -> SendFuture<'a> {
        SendFuture {
            queue: self,
            msg: msg.as_ref(),
            key: None,
        }
    }

    /// The leases of this queue as a [`Stream`], until the handle is
    /// [shut down](Self::shutdown): the async [`incoming`](Self::incoming).
    /// The stream owns a clone of the handle, so it can move into a spawned
    /// task; each `next` is cancellation-safe as
    /// [`receive_async`](Self::receive_async) is.
    ///
    /// ```
    /// # let dir = tempfile::tempdir()?;
    /// use futures_util::StreamExt;
    /// use shmq::{Config, Queue};
    /// # tokio::runtime::Runtime::new()?.block_on(async {
    /// let q = Queue::create(dir.path().join("jobs.q"), &Config::default())?;
    /// let worker = tokio::spawn({
    ///     let mut leases = q.incoming_stream();
    ///     async move {
    ///         let mut done = 0;
    ///         while let Some(lease) = leases.next().await {
    ///             lease.ack()?;
    ///             done += 1;
    ///         }
    ///         // The stream ended: the queue was shut down.
    ///         Ok::<_, shmq::Error>(done)
    ///     }
    /// });
    /// q.send("job")?;
    /// while q.stats().acked < 1 {
    ///     tokio::task::yield_now().await;
    /// }
    /// q.shutdown();
    /// assert_eq!(worker.await??, 1);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// # })?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// *Feature `tokio`.*
    pub fn incoming_stream(&self) -> IncomingStream {
        IncomingStream {
            queue: self.clone(),
            key: None,
        }
    }
}

/// The future of [`Queue::receive_async`]: a lease, or `None` once the
/// handle is shut down.
#[must_use = "futures do nothing unless polled"]
pub struct ReceiveFuture<'a> {
    queue: &'a Queue,
    /// Our registration in the handle's `park` registry, if any.
    key: Option<u64>,
}

impl Future for ReceiveFuture<'_> {
    type Output = Option<Lease>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Lease>> {
        let this = self.get_mut();
        poll_receive(this.queue, &mut this.key, cx)
    }
}

impl Drop for ReceiveFuture<'_> {
    fn drop(&mut self) {
        self.queue.waiters().park.leave(&mut self.key);
    }
}

impl std::fmt::Debug for ReceiveFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReceiveFuture")
            .field("waiting", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// The future of [`Queue::send_async`]: the message id, or why it was not
/// sent.
#[must_use = "futures do nothing unless polled"]
pub struct SendFuture<'a> {
    queue: &'a Queue,
    msg: &'a [u8],
    /// Our registration in the handle's `room` registry, if any.
    key: Option<u64>,
}

impl Future for SendFuture<'_> {
    type Output = Result<u64, SendError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Result<u64, SendError>> {
        let this = self.get_mut();
        let q = this.queue;
        let room = &q.waiters().room;
        match q.send(this.msg) {
            Err(SendError::Full) => {}
            other => {
                room.leave(&mut this.key);
                return Poll::Ready(other);
            }
        }
        #[cfg(test)]
        tests::between_look_and_bit(q);
        // §5.1, waiting for room, as `send_until`: set the waiter bit, ...
        let seen = q.room_wait_word();
        // After the load of the futex word: see `Queue::shutdown`.
        if q.is_shut_down() {
            room.leave(&mut this.key);
            return Poll::Ready(Err(SendError::Full));
        }
        room.wait(q, Word::Room, &mut this.key, cx.waker(), seen);
        // ... then look at every slot once more.
        // SYNC POINT (§5.1 waiting for room, §6 async waiters): the SeqCst
        // RMW (or load) of the waiter bit in `room_wait_word`, then the
        // loads of `send_last_look`, against a freer's SeqCst commit then
        // load of `room` (ring.rs `note_freed`): either this look finds the
        // free slot or the freer sees the bit and changes the word, which
        // differs from `seen` from then on, so the waiter thread wakes us.
        match q.send_last_look(this.msg) {
            Err(SendError::Full) => Poll::Pending,
            other => {
                room.leave(&mut this.key);
                Poll::Ready(other)
            }
        }
    }
}

impl Drop for SendFuture<'_> {
    fn drop(&mut self) {
        self.queue.waiters().room.leave(&mut self.key);
    }
}

impl std::fmt::Debug for SendFuture<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SendFuture")
            .field("len", &self.msg.len())
            .field("waiting", &self.key.is_some())
            .finish_non_exhaustive()
    }
}

/// The [`Stream`] of [`Queue::incoming_stream`]: leases until the handle
/// is shut down.
#[must_use = "streams do nothing unless polled"]
pub struct IncomingStream {
    queue: Queue,
    /// Our registration in the handle's `park` registry, if any.
    key: Option<u64>,
}

impl IncomingStream {
    /// The queue the leases come from.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }
}

impl Stream for IncomingStream {
    type Item = Lease;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Lease>> {
        let this = self.get_mut();
        poll_receive(&this.queue, &mut this.key, cx)
    }
}

impl futures_core::FusedStream for IncomingStream {
    /// Ended: the handle was shut down.
    fn is_terminated(&self) -> bool {
        self.queue.is_shut_down()
    }
}

impl Drop for IncomingStream {
    fn drop(&mut self) {
        self.queue.waiters().park.leave(&mut self.key);
    }
}

impl std::fmt::Debug for IncomingStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IncomingStream")
            .field("queue", &self.queue)
            .field("waiting", &self.key.is_some())
            .finish()
    }
}

/// One look for a lease, registering to be woken if there is none.
fn poll_receive(q: &Queue, key: &mut Option<u64>, cx: &mut Context<'_>) -> Poll<Option<Lease>> {
    let park = &q.waiters().park;
    if q.is_shut_down() {
        park.leave(key);
        return Poll::Ready(None);
    }
    if let Some(lease) = q.try_receive() {
        park.leave(key);
        return Poll::Ready(Some(lease));
    }
    #[cfg(test)]
    tests::between_look_and_bit(q);
    // §6, as `receive_into` before it parks: set the waiter bit, ...
    let seen = set_park_bit(q.park_word());
    // After the load of the futex word: see `Queue::shutdown`.
    if q.is_shut_down() {
        park.leave(key);
        return Poll::Ready(None);
    }
    park.wait(q, Word::Park, key, cx.waker(), seen);
    // SYNC POINT (§6 async waiters): the waiter bit is set (SeqCst RMW, or
    // found set by a SeqCst load) and the fence orders it before this last
    // look, against a sender's SeqCst publish then load of `park`
    // (`Queue::wake_parked`): either this look finds the message, or the
    // sender sees the bit and changes the word, which differs from `seen`
    // from then on, so the waiter thread wakes us.
    fence(SeqCst);
    if let Some(lease) = q.try_receive_last_look() {
        park.leave(key);
        return Poll::Ready(Some(lease));
    }
    Poll::Pending
}

/// Set the waiter bit of `park` (as `receive_into` does) and return the
/// value with the bit set: the value the waiter thread must see change.
fn set_park_bit(park: &AtomicU32) -> u32 {
    // SYNC POINT: SeqCst, the store half of the §6 pair (see `poll_receive`).
    let mut w = park.load(SeqCst);
    for _ in 0..BIT_TRIES {
        if w & 1 != 0 {
            return w;
        }
        match park.compare_exchange(w, w | 1, SeqCst, SeqCst) {
            Ok(_) => return w | 1,
            Err(x) => w = x,
        }
    }
    // A hostile writer keeps changing the word: the thread's wait on a
    // stale value returns at once, and its waits are bounded anyway.
    w
}

// ------------------------------------------------------- registry, thread

/// Which futex word a registry's thread sleeps on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Word {
    /// `park`: receivers waiting for a message (§6).
    Park,
    /// `room`: senders waiting for a free slot (§5.1).
    Room,
}

impl Word {
    fn of(self, q: &Queue) -> &AtomicU32 {
        match self {
            Word::Park => q.park_word(),
            Word::Room => q.room_word(),
        }
    }

    fn thread_name(self) -> &'static str {
        match self {
            Word::Park => "shmq-recv-wait",
            Word::Room => "shmq-room-wait",
        }
    }

    /// The longest sleep before every waiting task must look again on its
    /// own: the sweep deadline, so that expired leases are redelivered
    /// (as `receive_into`), or the room re-check (as `send_until`).
    fn timeout(self, q: &Queue) -> Duration {
        match self {
            Word::Park => {
                let until_sweep = q.sweep_due_ms().saturating_sub(now_ms()).max(1);
                Duration::from_millis(until_sweep).min(PARK_RECHECK)
            }
            Word::Room => ROOM_RECHECK,
        }
    }
}

/// The async waiters of one queue handle and its clones: a registry per
/// futex word. Dropped with the handle's last clone, which tells the
/// waiter threads to exit.
#[derive(Default)]
pub(crate) struct Waiters {
    pub(crate) park: Arc<Registry>,
    pub(crate) room: Arc<Registry>,
}

impl Drop for Waiters {
    fn drop(&mut self) {
        self.park.close();
        self.room.close();
    }
}

/// The tasks waiting on one futex word of one handle, and the state of the
/// thread that sleeps on the word for them. Every field is behind one
/// mutex: tasks and the thread change it only while holding it.
#[derive(Default)]
pub(crate) struct Registry {
    state: Mutex<State>,
    /// The thread waits here while nobody waits on the word.
    idle: Condvar,
}

#[derive(Default)]
struct State {
    /// Waiting tasks, by key.
    tasks: HashMap<u64, Task>,
    next_key: u64,
    /// A waiter thread exists and will look at `tasks` again.
    running: bool,
    /// The thread holds a handle, or `handoff` has one for it.
    has_queue: bool,
    /// A handle for a running thread that holds none (it drops its own
    /// whenever nobody waits, so that the handle's last clone can go).
    handoff: Option<Queue>,
    /// The thread waits on `idle`.
    idle: bool,
    /// The handle's last clone was dropped: the thread exits.
    closed: bool,
}

struct Task {
    waker: Waker,
    /// The word's value (waiter bit set) at the task's last look.
    seen: u32,
}

fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    // A panic while holding the lock (a panicking waker's clone) leaves the
    // state consistent: every update is a single insert, remove or store.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Registry {
    /// Register (or update) the task `key` as waiting for `word` to move
    /// from `seen`, starting or rousing the waiter thread if needed.
    fn wait(
        self: &Arc<Self>,
        q: &Queue,
        word: Word,
        key: &mut Option<u64>,
        waker: &Waker,
        seen: u32,
    ) {
        // Wakers replaced or removed here are dropped after the unlock: the
        // drop of a task's last waker may drop its future, whose `Drop`
        // locks this registry.
        let mut old: Option<Waker> = None;
        let mut st = lock(&self.state);
        let k = *key.get_or_insert_with(|| {
            st.next_key += 1;
            st.next_key
        });
        match st.tasks.get_mut(&k) {
            Some(t) => {
                t.seen = seen;
                if !t.waker.will_wake(waker) {
                    old = Some(std::mem::replace(&mut t.waker, waker.clone()));
                }
            }
            None => {
                st.tasks.insert(
                    k,
                    Task {
                        waker: waker.clone(),
                        seen,
                    },
                );
            }
        }
        if !st.running {
            let reg = Arc::clone(self);
            let handle = q.clone();
            let spawned = std::thread::Builder::new()
                .name(word.thread_name().into())
                .spawn(move || run(reg, word, handle));
            match spawned {
                Ok(_) => {
                    st.running = true;
                    st.has_queue = true;
                }
                Err(_) => {
                    // No thread (a thread limit): do not sleep unwoken; the
                    // task polls again and the next wait tries to spawn.
                    old = st.tasks.remove(&k).map(|t| t.waker);
                    *key = None;
                    waker.wake_by_ref();
                }
            }
        } else if !st.has_queue {
            st.handoff = Some(q.clone());
            st.has_queue = true;
        }
        if st.idle {
            self.idle.notify_one();
        }
        drop(st);
        drop(old);
    }

    /// Forget the task `key` (it got what it waited for, or was dropped).
    fn leave(&self, key: &mut Option<u64>) {
        if let Some(k) = key.take() {
            // The guard goes at the end of this statement, the waker after.
            let task = lock(&self.state).tasks.remove(&k);
            drop(task);
        }
    }

    /// The handle's last clone is gone: let the thread exit.
    fn close(&self) {
        let mut st = lock(&self.state);
        st.closed = true;
        if st.idle {
            self.idle.notify_one();
        }
    }
}

/// The waiter thread of one futex word of one handle.
fn run(reg: Arc<Registry>, word: Word, first: Queue) {
    let mut queue = Some(first);
    let mut wake: Vec<Waker> = Vec::new();
    // When the current sleep must end: at it, every task looks again.
    let mut deadline: Option<Instant> = None;
    let mut st = lock(&reg.state);
    loop {
        if st.tasks.is_empty() {
            deadline = None;
            // Hold no handle while nobody waits, so that the handle's last
            // clone can go (and with it the mapping). Dropped unlocked: the
            // drop may be that last clone, whose `Waiters` closes `reg`.
            if let Some(q) = queue.take().or_else(|| st.handoff.take()) {
                st.has_queue = false;
                drop(st);
                drop(q);
                st = lock(&reg.state);
                continue;
            }
            if st.closed {
                st.running = false;
                return;
            }
            st.idle = true;
            let (guard, res) = reg
                .idle
                .wait_timeout(st, IDLE_EXIT)
                .unwrap_or_else(PoisonError::into_inner);
            st = guard;
            st.idle = false;
            if res.timed_out() && st.tasks.is_empty() && st.handoff.is_none() {
                st.running = false;
                return;
            }
            continue;
        }
        if queue.is_none() {
            queue = st.handoff.take();
        }
        let Some(q) = queue.as_ref() else {
            // Unreachable (a task that registers while `has_queue` is false
            // hands a handle over); wake everyone rather than sleep blind.
            wake.extend(st.tasks.drain().map(|(_, t)| t.waker));
            st.has_queue = false;
            drop(st);
            wake.drain(..).for_each(Waker::wake);
            st = lock(&reg.state);
            continue;
        };
        let w = word.of(q);
        // SYNC POINT (§6 async waiters): SeqCst load, after the lock that
        // orders it after each task's SeqCst set of the waiter bit, so it
        // reads that value or a later one: a value other than a task's
        // `seen` means a sender, freer or shutdown changed the word since
        // that task's last look.
        let cur = w.load(SeqCst);
        let timed_out = deadline.is_some_and(|d| Instant::now() >= d);
        // Removed tasks' wakers are cloned into `wake` first, so no last
        // waker is dropped under the lock (see `Registry::wait`).
        st.tasks.retain(|_, t| {
            let stay = !timed_out && t.seen == cur;
            if !stay {
                wake.push(t.waker.clone());
            }
            stay
        });
        if !wake.is_empty() || st.tasks.is_empty() {
            deadline = None;
            drop(st);
            // Unlocked: a waker may run arbitrary code.
            wake.drain(..).for_each(Waker::wake);
            st = lock(&reg.state);
            continue;
        }
        // Every remaining task saw `cur`: sleep until the word moves from it
        // (FUTEX_WAIT returns at once if it already has) or the deadline.
        let timeout = word.timeout(q);
        deadline = Some(Instant::now() + timeout);
        drop(st);
        futex_wait(w, cur, timeout);
        st = lock(&reg.state);
    }
}

#[cfg(test)]
mod tests {
    //! The window the last look covers: a publish (or a freed slot) that
    //! lands after a task's first look and before its waiter bit. The
    //! sender then sees no bit and wakes nobody, so only the last look can
    //! find it; these tests put a send (an ack) exactly there.
    use super::*;
    use std::cell::Cell;
    use std::sync::Arc;
    use std::task::Wake;

    use crate::Config;

    type Hook = Box<dyn FnOnce(&Queue)>;

    thread_local! {
        static BETWEEN: Cell<Option<Hook>> = const { Cell::new(None) };
    }

    /// Run the hook set for this thread, once.
    pub(super) fn between_look_and_bit(q: &Queue) {
        if let Some(f) = BETWEEN.with(Cell::take) {
            f(q);
        }
    }

    struct Noop;
    impl Wake for Noop {
        fn wake(self: Arc<Self>) {}
    }

    fn poll_once<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
        let waker = Waker::from(Arc::new(Noop));
        Pin::new(f).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_send_between_the_first_look_and_the_waiter_bit_is_found_by_the_last_look() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::create(dir.path().join("q"), &Config::default()).unwrap();
        BETWEEN.with(|h| {
            h.set(Some(Box::new(|q: &Queue| {
                q.send("late").unwrap();
            })))
        });
        let mut fut = q.receive_async();
        match poll_once(&mut fut) {
            Poll::Ready(Some(lease)) => assert_eq!(lease.payload(), b"late"),
            other => panic!("the last look missed the message: {other:?}"),
        }
    }

    #[test]
    fn an_ack_between_the_first_look_and_the_waiter_bit_is_found_by_the_last_look() {
        let dir = tempfile::tempdir().unwrap();
        let q = Queue::create(dir.path().join("q"), &Config::default().slots(1)).unwrap();
        q.send("first").unwrap();
        BETWEEN.with(|h| {
            h.set(Some(Box::new(|q: &Queue| {
                q.try_receive().unwrap().ack().unwrap()
            })))
        });
        let mut fut = q.send_async("second");
        match poll_once(&mut fut) {
            Poll::Ready(Ok(_)) => {}
            other => panic!("the last look missed the free slot: {other:?}"),
        }
    }
}
