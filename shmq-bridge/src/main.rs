//! `shmq-bridge`: carries shmq queues across hosts through NATS JetStream.
//!
//! ```text
//! host A:  shmq-bridge out --queue /run/a.q --server nats://hub:4222 --stream ORDERS --subject orders
//! host B:  shmq-bridge in  --server nats://hub:4222 --stream ORDERS --consumer b --queue /run/b.q
//! ```
//!
//! `out` leases messages from a local queue and publishes them to a stream,
//! acking locally only after JetStream's publish ack; `in` pulls them from a
//! durable consumer into a local queue, acking to JetStream only after the
//! local send. End to end: at least once. See the README's "Across hosts".
//!
//! Exit codes: 0 stopped by SIGTERM or SIGINT; 1 another failure; 2 bad
//! arguments; 3 the local queue cannot be opened; 4 JetStream refused the
//! stream or consumer.

mod bench;
mod clock;
mod inbound;
mod js;
mod out;
mod status;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use clock::parse_duration;

// Each message allocates a few dozen small blocks (async-nats header maps,
// futures, buffers) on two threads; mimalloc serves them for about half
// glibc's cost (malloc and free were a fifth of both bridges' profiles).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// How a bridge stops: a watch that turns true on SIGTERM or SIGINT.
pub type Stop = tokio::sync::watch::Receiver<bool>;

/// A failure that ends the program, with its exit code and a message that
/// says what to do.
#[derive(Debug)]
pub struct Fatal {
    pub code: u8,
    pub message: String,
}

impl Fatal {
    pub fn other(message: String) -> Fatal {
        Fatal { code: 1, message }
    }
    pub fn usage(message: String) -> Fatal {
        Fatal { code: 2, message }
    }
    pub fn queue(message: String) -> Fatal {
        Fatal { code: 3, message }
    }
    pub fn nats(message: String) -> Fatal {
        Fatal { code: 4, message }
    }
}

fn duration(s: &str) -> Result<Duration, String> {
    parse_duration(s)
}

#[derive(Parser)]
#[command(
    name = "shmq-bridge",
    version,
    about = "Carry shmq queues across hosts through NATS JetStream (at least once, end to end)",
    after_help = "Exit codes: 0 stopped by SIGTERM/SIGINT, 1 other failure, 2 bad arguments, \
                  3 local queue cannot be opened, 4 JetStream refused the stream or consumer."
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(clap::Args, Clone)]
struct Common {
    /// NATS server URL (comma-separated for a cluster).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// JetStream stream name.
    #[arg(long)]
    stream: String,
    /// The stream's duplicate window, used when the bridge creates the
    /// stream: a message published again with the same id within it is
    /// dropped. Must exceed the longest outage of an out-bridge.
    #[arg(long, default_value = "10m", value_parser = duration)]
    duplicate_window: Duration,
    /// The stream's size limit in bytes when the bridge creates it (-1: none).
    #[arg(long, default_value_t = -1, allow_hyphen_values = true)]
    max_bytes: i64,
    /// Print a one-line JSON status on stdout this often (0: only at exit).
    #[arg(long, default_value = "10s", value_parser = duration)]
    status_every: Duration,
}

#[derive(Subcommand)]
enum Cmd {
    /// Local queue -> JetStream: lease, publish, ack after the publish ack.
    Out {
        /// The local queue to drain (it must exist).
        #[arg(long)]
        queue: PathBuf,
        /// Subject to publish to (the stream is created on it if missing).
        #[arg(long)]
        subject: String,
        #[command(flatten)]
        common: Common,
        /// Messages leased and not yet acked by JetStream, at most.
        #[arg(long, default_value_t = 256)]
        window: usize,
        /// Messages leased per receive call, at most.
        #[arg(long, default_value_t = 64)]
        batch: usize,
        /// Lease length; leases of slow publishes are extended.
        #[arg(long, default_value = "30s", value_parser = duration)]
        visibility: Duration,
        /// How long to wait for a publish ack before nacking locally.
        #[arg(long, default_value = "5s", value_parser = duration)]
        publish_timeout: Duration,
        /// Nack delay after a failed publish, doubled per receive.
        #[arg(long, default_value = "250ms", value_parser = duration)]
        retry_delay: Duration,
        /// Largest nack delay after a failed publish.
        #[arg(long, default_value = "30s", value_parser = duration)]
        retry_delay_max: Duration,
    },
    /// JetStream -> local queue: pull, send, ack to JetStream after the send.
    In {
        /// Durable pull consumer name (created if missing).
        #[arg(long)]
        consumer: String,
        /// The local queue to fill.
        #[arg(long)]
        queue: PathBuf,
        /// Subject to create the stream on if it is missing (otherwise the
        /// in-bridge waits for the out-bridge to create it).
        #[arg(long)]
        subject: Option<String>,
        #[command(flatten)]
        common: Common,
        /// Create missing local queues with this many slots.
        #[arg(long)]
        create_slots: Option<u32>,
        /// Slot size of queues created by --create-slots.
        #[arg(long, default_value_t = 1024)]
        create_slot_size: u32,
        /// Messages per pull request.
        #[arg(long, default_value_t = 256)]
        batch: usize,
        /// The consumer's ack wait (JetStream's visibility timeout), when created.
        #[arg(long, default_value = "30s", value_parser = duration)]
        ack_wait: Duration,
        /// The consumer's MaxDeliver when created (0: unlimited). A message
        /// that cannot go into the local queue on its last delivery is
        /// dead-lettered.
        #[arg(long, default_value_t = 20)]
        max_deliver: i64,
        /// Nak delay when the local queue is full (pulling pauses as long).
        #[arg(long, default_value = "1s", value_parser = duration)]
        full_delay: Duration,
        /// Local dead-letter queue: messages that cannot be delivered go
        /// there in an envelope with their reason. Without it they are
        /// terminated in JetStream (Term).
        #[arg(long)]
        dead_letters: Option<PathBuf>,
    },
    /// Measure the bridge against plain JetStream on a running server.
    Bench(bench::BenchArgs),
}

fn some_every(d: Duration) -> Option<Duration> {
    (!d.is_zero()).then_some(d)
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Two async threads: the connection's I/O runs beside the bridge's own
    // loop (measured slightly faster than one thread on two cores).
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.worker_threads(2);
    let rt = match builder.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("shmq-bridge: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    let outcome = rt.block_on(async move {
        let (tx, stop) = tokio::sync::watch::channel(false);
        tokio::spawn(async move {
            use tokio::signal::unix::{signal, SignalKind};
            let (Ok(mut term), Ok(mut int)) = (
                signal(SignalKind::terminate()),
                signal(SignalKind::interrupt()),
            ) else {
                return;
            };
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
            let _ = tx.send(true);
            // Keep the sender alive: a dropped sender would wake `changed`
            // again and again.
            std::future::pending::<()>().await;
        });
        match cli.cmd {
            Cmd::Out {
                queue,
                subject,
                common,
                window,
                batch,
                visibility,
                publish_timeout,
                retry_delay,
                retry_delay_max,
            } => {
                if window == 0 {
                    return Err(Fatal::usage("--window must be at least 1".into()));
                }
                out::run(
                    out::OutArgs {
                        queue,
                        server: common.server,
                        stream: common.stream,
                        subject,
                        window,
                        batch,
                        visibility,
                        publish_timeout,
                        retry_delay,
                        retry_delay_max,
                        duplicate_window: common.duplicate_window,
                        max_bytes: common.max_bytes,
                        status_every: some_every(common.status_every),
                    },
                    stop,
                )
                .await
            }
            Cmd::In {
                consumer,
                queue,
                subject,
                common,
                create_slots,
                create_slot_size,
                batch,
                ack_wait,
                max_deliver,
                full_delay,
                dead_letters,
            } => {
                if batch == 0 {
                    return Err(Fatal::usage("--batch must be at least 1".into()));
                }
                inbound::run(
                    inbound::InArgs {
                        server: common.server,
                        stream: common.stream,
                        subject,
                        consumer,
                        queue,
                        create: create_slots
                            .map(|n| shmq::Config::default().slots(n).slot_size(create_slot_size)),
                        batch,
                        ack_wait,
                        max_deliver,
                        full_delay,
                        dead_letters,
                        duplicate_window: common.duplicate_window,
                        max_bytes: common.max_bytes,
                        status_every: some_every(common.status_every),
                    },
                    stop,
                )
                .await
            }
            Cmd::Bench(args) => {
                let mut stop = stop;
                tokio::select! {
                    r = bench::run(args) => r,
                    _ = stop.changed() => Err(Fatal::other("interrupted".into())),
                }
            }
        }
    });
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("shmq-bridge: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}
