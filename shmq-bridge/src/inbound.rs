//! The in-bridge: JetStream → local queue.
//!
//! Pulls batches from a durable pull consumer (many messages in flight, one
//! pull request per batch), sends each batch into the local queue with one
//! `send_batch`, and acks each message to JetStream only after its local
//! send returned Ok. A message JetStream sees acked is in the local queue;
//! a message sent locally whose ack is lost (the bridge killed, the server
//! gone) is delivered again by JetStream after its ack wait and sent again:
//! a duplicate, never a loss.
//!
//! A full local queue answers `Nak` with a delay (backpressure crosses the
//! host boundary) and pauses pulling for that delay. A message that cannot
//! go into the local queue on JetStream's last delivery (`MaxDeliver`), or
//! never can (larger than the slot size), is dead-lettered: sent to the
//! dead-letter queue (`--dead-letters PATH`, an envelope carrying the reason
//! and the JetStream headers, see [`envelope`]) and acked, or `Term`ed when
//! no dead-letter queue is configured.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, AckKind};
use futures::{FutureExt, StreamExt};
use serde_json::{json, Map};
use shmq::{Config, Error as QError, Queue};

use crate::js::{self, ConsumerSpec, StreamSpec};
use crate::status::Status;
use crate::{Fatal, Stop};

/// Settings of `shmq-bridge in`.
#[derive(Clone, Debug)]
pub struct InArgs {
    pub server: String,
    pub stream: String,
    pub subject: Option<String>,
    pub consumer: String,
    pub queue: PathBuf,
    /// Create the queue with this configuration when it is missing.
    pub create: Option<Config>,
    pub batch: usize,
    pub ack_wait: Duration,
    /// Zero: unlimited.
    pub max_deliver: i64,
    pub full_delay: Duration,
    pub dead_letters: Option<PathBuf>,
    pub duplicate_window: Duration,
    pub max_bytes: i64,
    pub status_every: Option<Duration>,
}

const COUNTERS: &[&str] = &[
    "pulled",
    "sent",
    "acked",
    "nak_full",
    "nak_retry",
    "dead_lettered",
    "termed",
    "dead_letter_failed",
    "ack_failed",
    "pull_errors",
];

/// The dead-letter envelope: `SHMQ-DEAD/1\r\n`, then `Name: value\r\n` lines
/// (`Reason`, `Stream`, `Stream-Seq`, `Delivered`, then every JetStream header
/// of the message), a blank line, then the payload unchanged. Read it with
/// [`envelope::parse`].
pub mod envelope {
    /// The `Name: value` lines, in order.
    pub type Fields = Vec<(String, String)>;

    /// The first line.
    pub const MAGIC: &str = "SHMQ-DEAD/1";

    /// Build an envelope.
    pub fn build(fields: &Fields, payload: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(payload.len() + 256);
        out.extend_from_slice(MAGIC.as_bytes());
        out.extend_from_slice(b"\r\n");
        for (k, v) in fields {
            let clean = |s: &str| s.replace(['\r', '\n'], " ");
            out.extend_from_slice(format!("{}: {}\r\n", clean(k), clean(v)).as_bytes());
        }
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(payload);
        out
    }

    /// Split an envelope into its fields and payload; `None` if it is not one.
    #[cfg(test)]
    pub fn parse(bytes: &[u8]) -> Option<(Fields, &[u8])> {
        let end = bytes.windows(4).position(|w| w == b"\r\n\r\n")?;
        let head = std::str::from_utf8(&bytes[..end]).ok()?;
        let mut lines = head.split("\r\n");
        if lines.next()? != MAGIC {
            return None;
        }
        let fields = lines
            .map(|l| {
                let (k, v) = l.split_once(": ")?;
                Some((k.to_string(), v.to_string()))
            })
            .collect::<Option<Vec<_>>>()?;
        Some((fields, &bytes[end + 4..]))
    }
}

fn open_queue(path: &PathBuf, create: Option<&Config>, what: &str) -> Result<Queue, Fatal> {
    // --create-* say how to make a queue that is missing; an existing one
    // is used as it is (its own configuration), as before `open_or_create`
    // began to refuse a different one.
    let r = match create {
        Some(c) => match Queue::create(path, c) {
            Err(shmq::Error::AlreadyExists { .. }) => Queue::open(path),
            r => r,
        },
        None => Queue::open(path),
    };
    r.map_err(|e| {
        Fatal::queue(format!(
            "cannot open {what} {}: {e}; create it with `shmq create`, or pass --create",
            path.display()
        ))
    })
}

struct Bridge {
    a: InArgs,
    queue: Arc<Queue>,
    dead: Option<Queue>,
    status: Status,
    pause_until: Option<Instant>,
}

/// Run the in-bridge until `stop`.
pub async fn run(a: InArgs, mut stop: Stop) -> Result<(), Fatal> {
    let queue = Arc::new(open_queue(&a.queue, a.create.as_ref(), "queue")?);
    let dead = match &a.dead_letters {
        Some(p) => Some(open_queue(p, a.create.as_ref(), "dead-letter queue")?),
        None => None,
    };
    let status = Status::new(COUNTERS, "acked");
    let client = js::connect(&a.server, "in", &status).await?;
    let js = js::context(client.clone(), Duration::from_secs(5));
    let spec = StreamSpec {
        name: &a.stream,
        subject: a.subject.as_deref(),
        duplicate_window: a.duplicate_window,
        max_bytes: a.max_bytes,
    };
    let cspec = ConsumerSpec {
        durable: &a.consumer,
        ack_wait: a.ack_wait,
        max_deliver: a.max_deliver,
        max_ack_pending: (a.batch * 4).max(1000) as i64,
    };
    let mut b = Bridge {
        a: a.clone(),
        queue,
        dead,
        status: status.clone(),
        pause_until: None,
    };
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last_status = Instant::now();
    let mut announced = false;

    // Each round: (re)make the consumer and its pull stream; a stream that
    // fails (the server restarted, the consumer vanished) ends the round.
    'session: loop {
        let stream = tokio::select! {
            _ = stop.changed() => break 'session,
            s = js::ensure_stream(&js, &spec, &status) => s?,
        };
        let mut consumer = tokio::select! {
            _ = stop.changed() => break 'session,
            c = js::ensure_consumer(&stream, &cspec, &status) => c?,
        };
        let messages = consumer
            .stream()
            .max_messages_per_batch(a.batch)
            .expires(Duration::from_secs(5))
            .heartbeat(Duration::from_secs(1))
            .messages()
            .await;
        let mut messages = match messages {
            Ok(m) => m,
            Err(e) => {
                status.error(format!("pull from consumer {}: {e}; retrying", a.consumer));
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        status.set_connected(true);
        if !announced {
            announced = true;
            eprintln!(
                "shmq-bridge in: stream {} consumer {} -> {} (batch {})",
                a.stream,
                a.consumer,
                a.queue.display(),
                a.batch
            );
        }
        let mut errors_in_row = 0u32;
        loop {
            if let Some(until) = b.pause_until.take() {
                tokio::select! {
                    _ = stop.changed() => break 'session,
                    _ = tokio::time::sleep_until(until.into()) => {}
                }
            }
            tokio::select! {
                biased;
                _ = stop.changed() => break 'session,
                first = messages.next() => {
                    let Some(first) = first else { continue 'session };
                    let mut chunk = Vec::with_capacity(a.batch);
                    let mut ok = take(first, &mut chunk, &b.status);
                    // Everything already here joins the batch.
                    while ok && chunk.len() < a.batch {
                        match messages.next().now_or_never() {
                            Some(Some(m)) => ok = take(m, &mut chunk, &b.status),
                            _ => break,
                        }
                    }
                    b.handle(chunk).await;
                    if ok { errors_in_row = 0 } else {
                        errors_in_row += 1;
                        if errors_in_row >= 3 {
                            continue 'session;
                        }
                    }
                }
                _ = tick.tick() => {
                    if let Some(every) = a.status_every {
                        if last_status.elapsed() >= every {
                            last_status = Instant::now();
                            print_status(&b, &mut consumer).await;
                        }
                    }
                }
            }
        }
    }
    println!("{}", b.status.report("in", base_extra(&b.a)));
    Ok(())
}

/// For the kill test only: `SHMQ_BRIDGE_TORTURE_PAUSE_US` (unset: none)
/// pauses the in-bridge after each local send and each answer to
/// JetStream, so that a SIGKILL lands between any two of its steps often
/// enough to catch an order that loses messages (an ack before the send
/// it confirms). Never set it in production.
fn torture_pause() {
    static PAUSE: std::sync::OnceLock<Option<Duration>> = std::sync::OnceLock::new();
    let pause = PAUSE.get_or_init(|| {
        std::env::var("SHMQ_BRIDGE_TORTURE_PAUSE_US")
            .ok()
            .and_then(|v| v.parse().ok())
            .map(Duration::from_micros)
    });
    if let Some(d) = pause {
        // Blocking on purpose: tokio's timer is too coarse (1 ms).
        std::thread::sleep(*d);
    }
}

/// Add a pulled message to the batch; count and report a pull error.
fn take<E: std::fmt::Display>(
    m: Result<jetstream::Message, E>,
    chunk: &mut Vec<jetstream::Message>,
    status: &Status,
) -> bool {
    match m {
        Ok(m) => {
            chunk.push(m);
            true
        }
        Err(e) => {
            status.add("pull_errors", 1);
            status.error(format!("pull: {e}"));
            false
        }
    }
}

fn base_extra(a: &InArgs) -> Map<String, serde_json::Value> {
    let mut extra = Map::new();
    extra.insert("queue".into(), json!(a.queue.display().to_string()));
    extra.insert("stream".into(), json!(a.stream));
    extra.insert("consumer".into(), json!(a.consumer));
    extra
}

async fn print_status(b: &Bridge, consumer: &mut jetstream::consumer::PullConsumer) {
    let mut extra = base_extra(&b.a);
    // Lag: what waits in the stream for this consumer; in flight: delivered,
    // not yet acked.
    match tokio::time::timeout(Duration::from_secs(1), consumer.info()).await {
        Ok(Ok(info)) => {
            extra.insert("lag".into(), json!(info.num_pending));
            extra.insert("in_flight".into(), json!(info.num_ack_pending));
        }
        _ => {
            extra.insert("lag".into(), serde_json::Value::Null);
            extra.insert("in_flight".into(), serde_json::Value::Null);
        }
    }
    let st = b.queue.stats();
    extra.insert("queue_free".into(), json!(st.free));
    println!("{}", b.status.report("in", extra));
}

impl Bridge {
    fn last_delivery(&self, m: &jetstream::Message) -> bool {
        self.a.max_deliver > 0
            && m.info()
                .map(|i| i.delivered >= self.a.max_deliver)
                .unwrap_or(false)
    }

    async fn ack(&self, m: &jetstream::Message, kind: AckKind) {
        if let Err(e) = m.ack_with(kind).await {
            self.status.add("ack_failed", 1);
            self.status.error(format!("ack to JetStream failed: {e}"));
        }
        torture_pause();
    }

    /// Send a batch into the local queue, then answer JetStream for each.
    async fn handle(&mut self, chunk: Vec<jetstream::Message>) {
        self.status.add("pulled", chunk.len() as u64);
        let mut ids = Vec::with_capacity(chunk.len());
        let mut i = 0;
        while i < chunk.len() {
            let payloads: Vec<&[u8]> = chunk[i..].iter().map(|m| &m.payload[..]).collect();
            let outcome = self.queue.send_batch(&payloads, &mut ids);
            torture_pause();
            let sent = ids.len();
            self.status.add("sent", sent as u64);
            for m in &chunk[i..i + sent] {
                self.ack(m, AckKind::Ack).await;
                self.status.add("acked", 1);
            }
            let j = i + sent;
            let Err(e) = outcome else { break };
            match e {
                QError::Full => {
                    let delay = self.a.full_delay;
                    for m in &chunk[j..] {
                        if self.last_delivery(m) {
                            self.dead_letter(m, "local queue full at max deliver").await;
                        } else {
                            self.ack(m, AckKind::Nak(Some(delay))).await;
                            self.status.add("nak_full", 1);
                        }
                    }
                    self.pause_until = Some(Instant::now() + delay);
                    break;
                }
                QError::TooLarge { len, max } => {
                    let why = format!("{len} bytes exceed the local slot size of {max}");
                    self.dead_letter(&chunk[j], &why).await;
                }
                other => {
                    // ClaimExpired, Contended: transient; let JetStream retry.
                    let m = &chunk[j];
                    if self.last_delivery(m) {
                        self.dead_letter(m, &format!("local send failed at max deliver: {other}"))
                            .await;
                    } else {
                        self.ack(m, AckKind::Nak(Some(Duration::from_millis(100))))
                            .await;
                        self.status.add("nak_retry", 1);
                    }
                }
            }
            i = j + 1;
        }
    }

    async fn dead_letter(&self, m: &jetstream::Message, reason: &str) {
        let Some(dead) = &self.dead else {
            self.ack(m, AckKind::Term).await;
            self.status.add("termed", 1);
            self.status
                .error(format!("terminated a message in JetStream: {reason}"));
            return;
        };
        let mut fields = vec![("Reason".to_string(), reason.to_string())];
        if let Ok(info) = m.info() {
            fields.push(("Stream".into(), info.stream.to_string()));
            fields.push(("Stream-Seq".into(), info.stream_sequence.to_string()));
            fields.push(("Delivered".into(), info.delivered.to_string()));
        }
        if let Some(h) = &m.headers {
            for (k, vs) in h.iter() {
                for v in vs {
                    fields.push((k.to_string(), v.to_string()));
                }
            }
        }
        match dead.send(&envelope::build(&fields, &m.payload)) {
            Ok(_) => {
                self.ack(m, AckKind::Ack).await;
                self.status.add("dead_lettered", 1);
            }
            Err(e) => {
                self.ack(m, AckKind::Term).await;
                self.status.add("dead_letter_failed", 1);
                self.status.error(format!(
                    "dead-letter queue {}: {e}; the message was terminated in JetStream instead ({reason})",
                    dead.path().display()
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::envelope;

    #[test]
    fn envelope_round_trips() {
        let f = vec![("Reason".to_string(), "too\r\nlarge".to_string())];
        let e = envelope::build(&f, b"\r\n\r\npayload");
        let (fields, payload) = envelope::parse(&e).expect("an envelope");
        assert_eq!(fields, vec![("Reason".into(), "too  large".into())]);
        assert_eq!(payload, b"\r\n\r\npayload");
        assert!(envelope::parse(b"plain message").is_none());
    }
}
