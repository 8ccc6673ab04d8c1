//! The out-bridge: local queue → JetStream.
//!
//! A receiver thread leases messages from the queue in batches (the blocking
//! receive never runs on the async runtime) while the window has room; the
//! async side publishes each to the stream with its headers and keeps up to
//! `window` publish acks in flight. On a publish ack the lease is acked; on a
//! failed or timed-out publish it is nacked with a delay growing with its
//! receive count, so receive counts and dead-lettering stay the queue's. A
//! lease whose publish ack is slow is extended before it expires.
//!
//! The JetStream message id (`Nats-Msg-Id`) is `{identity:x}-{id}`: the
//! queue's identity and the message's id. A bridge killed between the
//! publish ack and the local ack leaves the lease to expire; the message is
//! leased and published again with the same id, and the stream drops it as a
//! duplicate (within its duplicate window) while the bridge acks it locally.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use async_nats::jetstream::message::PublishMessage;
use async_nats::HeaderMap;
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use serde_json::{json, Map};
use shmq::{Delivery, Nacked, Queue, Receipt};

use crate::clock::{mono_ms, unix_ms};
use crate::js::{self, StreamSpec};
use crate::status::Status;
use crate::{Fatal, Stop};

/// Settings of `shmq-bridge out`.
#[derive(Clone, Debug)]
pub struct OutArgs {
    pub queue: PathBuf,
    pub server: String,
    pub stream: String,
    pub subject: String,
    pub window: usize,
    pub batch: usize,
    pub visibility: Duration,
    pub publish_timeout: Duration,
    pub retry_delay: Duration,
    pub retry_delay_max: Duration,
    pub duplicate_window: Duration,
    pub max_bytes: i64,
    pub status_every: Option<Duration>,
}

/// The headers every published message carries.
pub mod header {
    /// `{identity:x}-{id}`: JetStream's de-duplication key.
    pub const MSG_ID: &str = "Nats-Msg-Id";
    /// The source queue's path on its host.
    pub const QUEUE: &str = "Shmq-Queue";
    /// The message id in the source queue.
    pub const ID: &str = "Shmq-Id";
    /// Deliveries by the source queue, this one included.
    pub const RECEIVES: &str = "Shmq-Receives";
    /// When the message was first sent, Unix milliseconds (the source
    /// host's clock, from the message's age at publish).
    pub const SENT_UNIX_MS: &str = "Shmq-Sent-Unix-Ms";
}

/// The JetStream message id of message `id` of the queue `identity`.
pub fn msg_id(identity: u64, id: u64) -> String {
    format!("{identity:x}-{id}")
}

const COUNTERS: &[&str] = &[
    "leased",
    "published",
    "acked",
    "duplicates",
    "publish_failed",
    "nacked",
    "dead_lettered_local",
    "lease_lost",
    "extended",
];

/// Free places in the window of messages leased and not yet finished.
///
/// The lease thread waits for `low` free places (or `linger`), so that under
/// load it leases a batch per wake-up instead of one message per publish
/// ack; when the window is mostly free it takes what is there at once.
struct Window {
    free: Mutex<usize>,
    cv: Condvar,
    low: usize,
}

impl Window {
    /// Take between 1 and `max` places: as soon as `low` are free, or what
    /// is free after `linger`, waiting up to `wait` for at least one.
    fn take(&self, max: usize, linger: Duration, wait: Duration) -> usize {
        let free = self.free.lock().expect("window lock");
        let (free, _) = self
            .cv
            .wait_timeout_while(free, linger, |f| *f < self.low)
            .expect("window lock");
        let (mut free, _) = self
            .cv
            .wait_timeout_while(free, wait.saturating_sub(linger), |f| *f == 0)
            .expect("window lock");
        let k = (*free).min(max);
        *free -= k;
        k
    }

    fn give(&self, n: usize) {
        if n > 0 {
            let mut free = self.free.lock().expect("window lock");
            let before = *free;
            *free += n;
            // Wake the lease thread when it has something to do: the first
            // free place, or `low` of them.
            if before == 0 || (before < self.low && *free >= self.low) {
                self.cv.notify_one();
            }
        }
    }
}

/// One message between its lease and its local ack or nack.
struct Entry {
    receipt: Receipt,
    receives: u32,
    extended_at: Instant,
}

/// Run the out-bridge until `stop`.
pub async fn run(a: OutArgs, mut stop: Stop) -> Result<(), Fatal> {
    let queue = Arc::new(
        Queue::open(&a.queue)
            .map_err(|e| {
                Fatal::queue(format!(
                    "cannot open the queue to drain: {e}; create it with `shmq create PATH --slots N --slot-size BYTES`"
                ))
            })?,
    );
    let status = Status::new(COUNTERS, "acked");
    let client = js::connect(&a.server, "out", &status).await?;
    let js = js::context(client.clone(), a.publish_timeout);
    js::ensure_stream(
        &js,
        &StreamSpec {
            name: &a.stream,
            subject: Some(&a.subject),
            duplicate_window: a.duplicate_window,
            max_bytes: a.max_bytes,
        },
        &status,
    )
    .await?;
    status.set_connected(client.connection_state() == async_nats::connection::State::Connected);
    eprintln!(
        "shmq-bridge out: {} -> stream {} subject {} (window {})",
        a.queue.display(),
        a.stream,
        a.subject,
        a.window
    );

    let window = Arc::new(Window {
        free: Mutex::new(a.window),
        cv: Condvar::new(),
        low: a.batch.clamp(1, (a.window / 4).max(1)),
    });
    let halt = Arc::new(AtomicBool::new(false));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Vec<(Delivery, Bytes)>>();
    let receiver = {
        let (queue, window, halt, status) =
            (queue.clone(), window.clone(), halt.clone(), status.clone());
        let vis = shmq::Visibility::new(a.visibility)
            .map_err(|e| Fatal::usage(format!("--visibility: {e}")))?;
        let batch = a.batch.max(1);
        std::thread::Builder::new()
            .name("shmq-bridge-lease".into())
            .spawn(move || {
                let (mut bufs, mut got) = (Vec::new(), Vec::new());
                while !halt.load(Relaxed) {
                    // Lease nothing while the server is away: a message leased
                    // now could only fail to publish and spend a receive.
                    if !status.connected() {
                        std::thread::park_timeout(Duration::from_millis(20));
                        continue;
                    }
                    let k =
                        window.take(batch, Duration::from_millis(1), Duration::from_millis(100));
                    if k == 0 {
                        continue;
                    }
                    let n = queue.receive_batch(
                        &mut bufs,
                        &mut got,
                        k,
                        Duration::from_millis(100),
                        Some(vis),
                    );
                    window.give(k - n);
                    if n == 0 {
                        continue;
                    }
                    let leased: Vec<(Delivery, Bytes)> = got
                        .drain(..)
                        .zip(bufs.iter())
                        .map(|(d, b)| (d, Bytes::copy_from_slice(b)))
                        .collect();
                    status.add("leased", n as u64);
                    if tx.send(leased).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| Fatal::other(format!("cannot start the lease thread: {e}")))?
    };

    let identity = queue.identity();
    let qpath = a.queue.display().to_string();
    let subject = async_nats::Subject::from(a.subject.as_str());
    let mut inflight: HashMap<u64, Entry> = HashMap::new();
    let mut pending = FuturesUnordered::new();
    let mut next_key = 0u64;
    let tick_every = (a.visibility / 4).clamp(Duration::from_millis(20), Duration::from_secs(1));
    let mut tick = tokio::time::interval(tick_every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();

    let retry = |receives: u32| -> Duration {
        let shift = receives.saturating_sub(1).min(16);
        (a.retry_delay * (1u32 << shift)).min(a.retry_delay_max)
    };
    let fail = |queue: &Queue, status: &Status, e: &Entry, why: String| {
        status.add("publish_failed", 1);
        match queue.nack(e.receipt, retry(e.receives)) {
            Ok(Nacked::Requeued) => status.add("nacked", 1),
            Ok(Nacked::DeadLettered) => status.add("dead_lettered_local", 1),
            Err(_) => status.add("lease_lost", 1),
        }
        status.error(why);
    };

    loop {
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            Some((key, res)) = pending.next(), if !pending.is_empty() => {
                let res: Result<async_nats::jetstream::publish::PublishAck, String> = res;
                let Some(e) = inflight.remove(&key) else { continue };
                window.give(1);
                match res {
                    Ok(ack) => {
                        if ack.duplicate {
                            status.add("duplicates", 1);
                        }
                        match queue.ack(e.receipt) {
                            Ok(()) => status.add("acked", 1),
                            // The lease expired first: the message will be
                            // leased again and dropped by the stream as a
                            // duplicate.
                            Err(_) => status.add("lease_lost", 1),
                        }
                    }
                    Err(why) => fail(&queue, &status, &e, format!("publish failed: {why}; the message is nacked and retried")),
                }
            }
            leased = rx.recv() => {
                let Some(leased) = leased else { break };
                let now = mono_ms();
                let wall = unix_ms();
                for (d, payload) in leased {
                    let key = next_key;
                    next_key += 1;
                    let age = now.saturating_sub(d.sent_ms);
                    let mut h = HeaderMap::new();
                    h.insert(header::MSG_ID, msg_id(identity, d.id).as_str());
                    h.insert(header::QUEUE, qpath.as_str());
                    h.insert(header::ID, d.id.to_string().as_str());
                    h.insert(header::RECEIVES, d.receives.to_string().as_str());
                    h.insert(header::SENT_UNIX_MS, wall.saturating_sub(age).to_string().as_str());
                    let e = Entry { receipt: d.receipt, receives: d.receives, extended_at: Instant::now() };
                    let msg = PublishMessage::build().payload(payload).headers(h);
                    match js.send_publish(subject.clone(), msg).await {
                        Ok(fut) => {
                            status.add("published", 1);
                            inflight.insert(key, e);
                            pending.push(async move { (key, fut.await.map_err(|e| e.to_string())) });
                        }
                        Err(why) => {
                            window.give(1);
                            fail(&queue, &status, &e, format!("publish failed: {why}; the message is nacked and retried"));
                        }
                    }
                }
            }
            _ = tick.tick() => {
                status.set_connected(client.connection_state() == async_nats::connection::State::Connected);
                if status.connected() {
                    receiver.thread().unpark();
                }
                // Extend the leases of messages whose publish ack is slow.
                for e in inflight.values_mut() {
                    if e.extended_at.elapsed() >= a.visibility / 2 {
                        match queue.extend(e.receipt, a.visibility) {
                            Ok(_) => { status.add("extended", 1); e.extended_at = Instant::now(); }
                            Err(_) => status.add("lease_lost", 1),
                        }
                    }
                }
                if let Some(every) = a.status_every {
                    if last_status.elapsed() >= every {
                        last_status = Instant::now();
                        print_status(&status, &queue, &a, inflight.len());
                    }
                }
            }
        }
    }

    // Stop leasing; finish what is in flight (bounded by the publish
    // timeout); hand back, unpublished, what was leased and never sent.
    halt.store(true, Relaxed);
    receiver.thread().unpark();
    let deadline = tokio::time::Instant::now() + a.publish_timeout + Duration::from_secs(1);
    while let Ok(Some((key, res))) = tokio::time::timeout_at(deadline, pending.next()).await {
        if let Some(e) = inflight.remove(&key) {
            match res {
                Ok(_) => match queue.ack(e.receipt) {
                    Ok(()) => status.add("acked", 1),
                    Err(_) => status.add("lease_lost", 1),
                },
                Err(_) => {
                    let _ = queue.nack(e.receipt, Duration::ZERO);
                }
            }
        }
    }
    let _ = tokio::task::spawn_blocking(move || receiver.join()).await;
    while let Ok(leased) = rx.try_recv() {
        for (d, _) in leased {
            let _ = queue.nack(d.receipt, Duration::ZERO);
        }
    }
    for e in inflight.values() {
        let _ = queue.nack(e.receipt, Duration::ZERO);
    }
    print_status(&status, &queue, &a, 0);
    Ok(())
}

fn print_status(status: &Status, queue: &Queue, a: &OutArgs, in_flight: usize) {
    let st = queue.stats();
    let mut extra = Map::new();
    extra.insert("queue".into(), json!(a.queue.display().to_string()));
    extra.insert("stream".into(), json!(a.stream));
    extra.insert("in_flight".into(), json!(in_flight));
    // Lag: what waits in the local queue for the bridge.
    extra.insert("lag".into(), json!(st.visible + st.delayed));
    extra.insert(
        "oldest_age_ms".into(),
        json!(st
            .oldest_visible_age
            .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))),
    );
    extra.insert("queue_dead".into(), json!(st.dead));
    println!("{}", status.report("out", extra));
}

#[cfg(test)]
mod tests {
    #[test]
    fn msg_id_names_queue_and_message() {
        assert_eq!(super::msg_id(0xabc, 42), "abc-42");
    }
}
