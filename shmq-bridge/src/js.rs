//! The JetStream side shared by both directions: connecting (and staying
//! connected), and making sure the stream and the durable consumer exist.

use std::time::Duration;

use async_nats::jetstream::{self, consumer, stream};

use crate::status::Status;
use crate::Fatal;

/// Connect to `url`. Returns at once: the client connects in the background
/// and reconnects by itself, forever, whenever the connection drops (a server
/// restart), with a delay growing to at most one second. Connection events
/// go to stderr and to `status`.
pub async fn connect(url: &str, name: &str, status: &Status) -> Result<async_nats::Client, Fatal> {
    let events = status.clone();
    let tag = name.to_string();
    async_nats::ConnectOptions::new()
        .name(format!("shmq-bridge {name}"))
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(Duration::from_secs(2))
        .reconnect_delay_callback(|attempts| {
            Duration::from_millis((attempts as u64 * 50).min(1000))
        })
        .event_callback(move |event| {
            let events = events.clone();
            let tag = tag.clone();
            async move {
                match event {
                    async_nats::Event::Connected => events.set_connected(true),
                    async_nats::Event::Disconnected => {
                        events.set_connected(false);
                        events.error(format!("disconnected from the NATS server ({tag})"));
                    }
                    // The client closes when the bridge exits.
                    async_nats::Event::Closed => events.set_connected(false),
                    other => events.error(format!("NATS event: {other}")),
                }
            }
        })
        .connect(url)
        .await
        .map_err(|e| {
            Fatal::usage(format!(
                "cannot use NATS server address {url:?}: {e}; pass --server nats://HOST:PORT"
            ))
        })
}

/// A JetStream context whose API requests and publish acks time out after
/// `timeout`.
pub fn context(client: async_nats::Client, timeout: Duration) -> jetstream::Context {
    jetstream::ContextBuilder::new()
        .timeout(timeout)
        .max_ack_inflight(65_536)
        .backpressure_on_inflight(true)
        .build(client)
}

/// Whether a JetStream API failure is the server's answer (a configuration
/// problem, not worth retrying) rather than a timeout or a lost connection.
fn is_answer(text: &str) -> bool {
    // A JetStream API error prints as "... (code N, error code M)"; one that
    // says the system is unavailable is transient (a server starting).
    text.contains("error code") && !text.contains("unavailable")
}

/// What the stream looks like when the bridge creates it.
pub struct StreamSpec<'a> {
    pub name: &'a str,
    pub subject: Option<&'a str>,
    pub duplicate_window: Duration,
    pub max_bytes: i64,
}

/// Get the stream, creating it (work-queue retention, file storage, the
/// duplicate window) when it is missing and a subject is known. Retries while
/// the server is unreachable; fails only on the server's own refusal.
pub async fn ensure_stream(
    js: &jetstream::Context,
    spec: &StreamSpec<'_>,
    status: &Status,
) -> Result<stream::Stream, Fatal> {
    let mut delay = Duration::from_millis(50);
    loop {
        let attempt = match spec.subject {
            Some(subject) => js
                .get_or_create_stream(stream::Config {
                    name: spec.name.to_string(),
                    subjects: vec![subject.to_string()],
                    retention: stream::RetentionPolicy::WorkQueue,
                    storage: stream::StorageType::File,
                    duplicate_window: spec.duplicate_window,
                    max_bytes: spec.max_bytes,
                    ..Default::default()
                })
                .await
                .map_err(|e| e.to_string()),
            None => js.get_stream(spec.name).await.map_err(|e| e.to_string()),
        };
        match attempt {
            Ok(s) => {
                if let Some(subject) = spec.subject {
                    let got = &s.cached_info().config;
                    if !got.subjects.iter().any(|x| x == subject) {
                        return Err(Fatal::nats(format!(
                            "stream {} exists but does not take subject {subject:?} (it takes {:?}); \
                             pass one of those with --subject, or another --stream",
                            spec.name, got.subjects
                        )));
                    }
                    if got.retention != stream::RetentionPolicy::WorkQueue {
                        status.error(format!(
                            "stream {} is not a work-queue stream: messages stay in it after the in-bridge acks them",
                            spec.name
                        ));
                    }
                }
                return Ok(s);
            }
            Err(e) if spec.subject.is_none() && e.contains("error code 10059") => {
                status.error(format!(
                    "stream {} does not exist yet; waiting for the out-bridge to create it (or pass --subject to create it here)",
                    spec.name
                ));
            }
            Err(e) if is_answer(&e) => {
                return Err(Fatal::nats(format!(
                    "JetStream refused stream {}: {e}; check the stream's name and subject against `nats stream info`, \
                     or that the server runs with JetStream (-js)",
                    spec.name
                )));
            }
            Err(e) => status.error(format!("stream {}: {e}; retrying", spec.name)),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}

/// What the durable pull consumer looks like when the bridge creates it.
pub struct ConsumerSpec<'a> {
    pub durable: &'a str,
    pub ack_wait: Duration,
    /// Zero: unlimited.
    pub max_deliver: i64,
    pub max_ack_pending: i64,
}

/// Get the durable consumer, creating it when missing. An existing consumer
/// keeps its own settings (they are reported when they differ).
pub async fn ensure_consumer(
    stream: &stream::Stream,
    spec: &ConsumerSpec<'_>,
    status: &Status,
) -> Result<consumer::PullConsumer, Fatal> {
    let config = consumer::pull::Config {
        durable_name: Some(spec.durable.to_string()),
        ack_policy: consumer::AckPolicy::Explicit,
        ack_wait: spec.ack_wait,
        max_deliver: if spec.max_deliver > 0 {
            spec.max_deliver
        } else {
            -1
        },
        max_ack_pending: spec.max_ack_pending,
        ..Default::default()
    };
    let mut delay = Duration::from_millis(50);
    loop {
        match stream
            .get_or_create_consumer::<consumer::pull::Config>(spec.durable, config.clone())
            .await
        {
            Ok(c) => {
                let got = &c.cached_info().config;
                if got.ack_wait != config.ack_wait || got.max_deliver != config.max_deliver {
                    status.error(format!(
                        "consumer {} exists with ack wait {:?} and max deliver {} (asked: {:?}, {}); \
                         its own settings apply (delete it to change them)",
                        spec.durable, got.ack_wait, got.max_deliver, config.ack_wait, config.max_deliver
                    ));
                }
                return Ok(c);
            }
            Err(e) if is_answer(&e.to_string()) => {
                return Err(Fatal::nats(format!(
                    "JetStream refused consumer {}: {e}; check --consumer (a durable pull consumer) and the stream",
                    spec.durable
                )));
            }
            Err(e) => status.error(format!("consumer {}: {e}; retrying", spec.durable)),
        }
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(2));
    }
}
