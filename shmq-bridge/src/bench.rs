//! `shmq-bridge bench`: messages/s and end-to-end latency through
//! out-bridge → JetStream → in-bridge, beside a plain async-nats publisher
//! and pull consumer with the same acks and the same window (the engine's
//! own ceiling), in one run against one server.
//!
//! Two direct runs: `direct` publishes the same headers as the out-bridge
//! (the same messages on the wire), `bare` only `Nats-Msg-Id`.
//!
//! Each message carries its send time (CLOCK_MONOTONIC, nanoseconds, shared
//! by every process on the host) and is timed when the final consumer has
//! it: for the bridge, from `send` on queue A to `receive` on queue B; for
//! the direct run, from `publish` to the pull consumer's hand. Throughput is
//! messages over the time from the first send to the last receive.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, message::PublishMessage, stream};
use bytes::Bytes;
use futures::stream::FuturesUnordered;
use futures::StreamExt;
use hdrhistogram::Histogram;
use shmq::{Config, Queue};

use crate::clock::mono_ns;
use crate::Fatal;

#[derive(clap::Args, Clone)]
pub struct BenchArgs {
    /// NATS server URL (a server with JetStream: nats-server -js).
    #[arg(long, default_value = "nats://127.0.0.1:4222")]
    server: String,
    /// Messages per run.
    #[arg(long, default_value_t = 50_000)]
    messages: u64,
    /// Payload size in bytes (at least 16).
    #[arg(long, default_value_t = 128)]
    size: usize,
    /// Publish acks in flight (the out-bridge's --window).
    #[arg(long, default_value_t = 256)]
    window: usize,
    /// Messages per pull request (the in-bridge's --batch).
    #[arg(long, default_value_t = 256)]
    batch: usize,
    /// Offered load in messages/s (0: as fast as possible).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Rounds of direct then bridge (the summary reports medians).
    #[arg(long, default_value_t = 1)]
    rounds: usize,
    /// Directory for the two queue files (default: a new one under /tmp).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Run only `direct`, only `bridge`, or `halves`: each bridge alone
    /// (out: a full queue A into the stream; in: that stream into B).
    #[arg(long)]
    only: Option<String>,
}

struct Outcome {
    rate: f64,
    lat: Histogram<u64>,
}

impl Outcome {
    fn line(&self, name: &str) -> String {
        let us = |q: f64| self.lat.value_at_quantile(q) as f64 / 1000.0;
        format!(
            "{name:<8} {:>10.0} msg/s   p50 {:>9.1} us   p99 {:>9.1} us   max {:>9.1} us",
            self.rate,
            us(0.5),
            us(0.99),
            self.lat.max() as f64 / 1000.0
        )
    }
}

fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000_000, 3).expect("histogram bounds")
}

fn stamp(buf: &mut [u8], seq: u64) {
    buf[..8].copy_from_slice(&mono_ns().to_le_bytes());
    buf[8..16].copy_from_slice(&seq.to_le_bytes());
}

fn sent_at(buf: &[u8]) -> u64 {
    u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"))
}

/// Paces sends at `rate` per second (0: no pacing), measured from `start`.
fn pace(rate: u64, start: Instant, k: u64) -> Option<Duration> {
    if rate == 0 {
        return None;
    }
    let due = start + Duration::from_secs_f64(k as f64 / rate as f64);
    due.checked_duration_since(Instant::now())
}

pub async fn run(a: BenchArgs) -> Result<(), Fatal> {
    if a.size < 16 {
        return Err(Fatal::usage("--size must be at least 16".into()));
    }
    let client = async_nats::ConnectOptions::new()
        .connection_timeout(Duration::from_secs(2))
        .connect(&a.server)
        .await
        .map_err(|e| {
            Fatal::other(format!(
                "cannot reach {}: {e}; start nats-server -js",
                a.server
            ))
        })?;
    let js = crate::js::context(client, Duration::from_secs(10));
    println!(
        "bench: {} messages of {} bytes, window {}, pull batch {}, rate {}",
        a.messages,
        a.size,
        a.window,
        a.batch,
        if a.rate == 0 {
            "max".to_string()
        } else {
            format!("{}/s", a.rate)
        }
    );
    if a.only.as_deref() == Some("halves") {
        return halves(&a, &js).await;
    }
    let run_direct = a.only.as_deref() != Some("bridge");
    let run_bridge = a.only.as_deref() != Some("direct");
    // Rounds alternate direct and bridge, so that load from elsewhere on the
    // machine falls on both alike; the summary takes the median round.
    let (mut ds, mut bare, mut bs) = (Vec::new(), Vec::new(), Vec::new());
    for r in 1..=a.rounds.max(1) {
        if run_direct {
            let d = direct(&a, &js, false).await?;
            println!("round {r}: {}", d.line("bare"));
            bare.push(d);
            let d = direct(&a, &js, true).await?;
            println!("round {r}: {}", d.line("direct"));
            ds.push(d);
        }
        if run_bridge {
            let b = bridge(&a, &js).await?;
            println!("round {r}: {}", b.line("bridge"));
            bs.push(b);
        }
    }
    let median = |v: &[Outcome], f: &dyn Fn(&Outcome) -> f64| -> f64 {
        let mut x: Vec<f64> = v.iter().map(f).collect();
        x.sort_by(|p, q| p.total_cmp(q));
        x[x.len() / 2]
    };
    let rate = |o: &Outcome| o.rate;
    let p50 = |o: &Outcome| o.lat.value_at_quantile(0.5) as f64 / 1000.0;
    let p99 = |o: &Outcome| o.lat.value_at_quantile(0.99) as f64 / 1000.0;
    for (name, v) in [("bare", &bare), ("direct", &ds), ("bridge", &bs)] {
        if !v.is_empty() {
            println!(
                "median {name:<8} {:>10.0} msg/s   p50 {:>9.1} us   p99 {:>9.1} us",
                median(v, &rate),
                median(v, &p50),
                median(v, &p99)
            );
        }
    }
    if !ds.is_empty() && !bs.is_empty() {
        for (name, d) in [("direct", &ds), ("bare", &bare)] {
            println!(
                "bridge/{name} (medians): throughput {:.2}x, p50 latency {:.2}x, p99 latency {:.2}x",
                median(&bs, &rate) / median(d, &rate),
                median(&bs, &p50) / median(d, &p50),
                median(&bs, &p99) / median(d, &p99),
            );
        }
    }
    Ok(())
}

async fn fresh_stream(
    js: &jetstream::Context,
    name: &str,
    subject: &str,
) -> Result<stream::Stream, Fatal> {
    let _ = js.delete_stream(name).await;
    js.create_stream(stream::Config {
        name: name.into(),
        subjects: vec![subject.into()],
        retention: stream::RetentionPolicy::WorkQueue,
        storage: stream::StorageType::File,
        duplicate_window: Duration::from_secs(600),
        ..Default::default()
    })
    .await
    .map_err(|e| Fatal::nats(format!("create stream {name}: {e}")))
}

/// Plain async-nats: a publisher with `window` publish acks in flight and a
/// pull consumer acking each message, as the two bridges do, with the same
/// headers on each message.
async fn direct(a: &BenchArgs, js: &jetstream::Context, headers: bool) -> Result<Outcome, Fatal> {
    let name = format!("BENCH_DIRECT_{}", std::process::id());
    let subject = format!("bench.direct.{}", std::process::id());
    let s = fresh_stream(js, &name, &subject).await?;
    let cons: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("bench".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            max_ack_pending: (a.batch * 4).max(1000) as i64,
            ..Default::default()
        })
        .await
        .map_err(|e| Fatal::nats(format!("create consumer: {e}")))?;
    let n = a.messages;
    let batch = a.batch;
    let reader = tokio::spawn(async move {
        let mut lat = histogram();
        let mut msgs = cons
            .stream()
            .max_messages_per_batch(batch)
            .messages()
            .await
            .map_err(|e| e.to_string())?;
        let mut got = 0;
        let mut last = Instant::now();
        while got < n {
            let m = msgs
                .next()
                .await
                .ok_or("pull stream ended")?
                .map_err(|e| e.to_string())?;
            let _ = lat.record(mono_ns().saturating_sub(sent_at(&m.payload)).max(1));
            m.ack().await.map_err(|e| e.to_string())?;
            got += 1;
            last = Instant::now();
        }
        Ok::<_, String>((lat, last))
    });
    let start = Instant::now();
    let mut pending = FuturesUnordered::new();
    let mut buf = vec![0u8; a.size];
    for k in 0..n {
        if let Some(d) = pace(a.rate, start, k) {
            tokio::time::sleep(d).await;
        }
        while pending.len() >= a.window {
            if let Some(Err(e)) = pending.next().await {
                return Err(Fatal::other(format!("direct publish: {e}")));
            }
        }
        stamp(&mut buf, k);
        // The same headers as the out-bridge sends (the engine's ceiling for
        // the same messages on the wire).
        // Bare: only the de-duplication id.
        let mut h = async_nats::HeaderMap::new();
        h.insert(
            "Nats-Msg-Id",
            format!("{:x}-{k}", 0x1d2c_3b4a_5968_7786_u64).as_str(),
        );
        if headers {
            h.insert("Shmq-Queue", "/tmp/shmq-bridge-bench/bench-a.q");
            h.insert("Shmq-Id", k.to_string().as_str());
            h.insert("Shmq-Receives", "1");
            h.insert(
                "Shmq-Sent-Unix-Ms",
                crate::clock::unix_ms().to_string().as_str(),
            );
        }
        let msg = PublishMessage::build()
            .payload(Bytes::copy_from_slice(&buf))
            .headers(h);
        let fut = js
            .send_publish(subject.clone(), msg)
            .await
            .map_err(|e| Fatal::other(format!("direct publish: {e}")))?;
        pending.push(std::future::IntoFuture::into_future(fut));
    }
    while let Some(r) = pending.next().await {
        r.map_err(|e| Fatal::other(format!("direct publish ack: {e}")))?;
    }
    let (lat, last) = reader
        .await
        .map_err(|e| Fatal::other(format!("direct reader: {e}")))?
        .map_err(|e| Fatal::other(format!("direct reader: {e}")))?;
    let _ = js.delete_stream(&name).await;
    Ok(Outcome {
        rate: n as f64 / last.duration_since(start).as_secs_f64(),
        lat,
    })
}

struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        // SAFETY: kill(2) on our own child's pid, which we have not reaped.
        unsafe { libc::kill(self.0.id() as libc::pid_t, libc::SIGTERM) };
        let _ = self.0.wait();
    }
}

/// Queue A → out-bridge → JetStream → in-bridge → queue B, the bridges as
/// separate processes with the given window and batch.
async fn bridge(a: &BenchArgs, js: &jetstream::Context) -> Result<Outcome, Fatal> {
    let tmp;
    let dir = match &a.dir {
        Some(d) => d.clone(),
        None => {
            tmp = std::env::temp_dir().join(format!("shmq-bridge-bench-{}", std::process::id()));
            std::fs::create_dir_all(&tmp)
                .map_err(|e| Fatal::other(format!("{}: {e}", tmp.display())))?;
            tmp.clone()
        }
    };
    let (pa, pb) = (dir.join("bench-a.q"), dir.join("bench-b.q"));
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
    let cfg = Config::default().slots(65_536).slot_size(a.size as u32);
    let qa = Arc::new(Queue::create(&pa, &cfg).map_err(|e| Fatal::queue(e.to_string()))?);
    let qb = Arc::new(Queue::create(&pb, &cfg).map_err(|e| Fatal::queue(e.to_string()))?);
    let name = format!("BENCH_BRIDGE_{}", std::process::id());
    let subject = format!("bench.bridge.{}", std::process::id());
    let _ = js.delete_stream(&name).await;
    let exe = std::env::current_exe().map_err(|e| Fatal::other(e.to_string()))?;
    let spawn = |args: Vec<String>| -> Result<Kid, Fatal> {
        Command::new(&exe)
            .args(args)
            .stdout(Stdio::null())
            .spawn()
            .map(Kid)
            .map_err(|e| Fatal::other(format!("start bridge: {e}")))
    };
    let s = |x: &str| x.to_string();
    let common = vec![
        s("--server"),
        a.server.clone(),
        s("--stream"),
        name.clone(),
        s("--status-every"),
        s("0"),
    ];
    let mut out_args = vec![
        s("out"),
        s("--queue"),
        pa.display().to_string(),
        s("--subject"),
        subject.clone(),
    ];
    out_args.extend(common.clone());
    out_args.extend([s("--window"), a.window.to_string()]);
    let mut in_args = vec![
        s("in"),
        s("--queue"),
        pb.display().to_string(),
        s("--consumer"),
        s("bench"),
    ];
    in_args.extend(common);
    in_args.extend([
        s("--batch"),
        a.batch.to_string(),
        s("--max-deliver"),
        s("0"),
    ]);
    let _out = spawn(out_args)?;
    let _in = spawn(in_args)?;
    // Ready when the in-bridge's consumer exists on the stream the
    // out-bridge created.
    let ready_by = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(mut st) = js.get_stream(&name).await {
            if st.info().await.map(|i| i.state.consumer_count).unwrap_or(0) >= 1 {
                break;
            }
        }
        if Instant::now() > ready_by {
            return Err(Fatal::other(
                "the bridges did not set up the stream within 20 s".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let n = a.messages;
    let reader = {
        let qb = qb.clone();
        std::thread::spawn(move || {
            let mut lat = histogram();
            let (mut bufs, mut got, mut failed) = (Vec::new(), Vec::new(), Vec::new());
            let mut seen = 0u64;
            let deadline = Instant::now() + Duration::from_secs(600);
            while seen < n && Instant::now() < deadline {
                // Poll without the receive's spin (which would take CPU
                // from the bridges on a small machine): this adds up to
                // about 60 us to the bridge's latency, never subtracts.
                let k = qb.receive_batch(&mut bufs, &mut got, 256, Duration::ZERO, None);
                if k == 0 {
                    std::thread::sleep(Duration::from_micros(50));
                    continue;
                }
                let now = mono_ns();
                for b in &bufs[..k] {
                    let _ = lat.record(now.saturating_sub(sent_at(b)).max(1));
                }
                qb.ack_batch(got.iter().map(|d| d.receipt), &mut failed);
                seen += k as u64;
            }
            (lat, seen, Instant::now())
        })
    };
    let (rate, size) = (a.rate, a.size);
    let writer = {
        let qa = qa.clone();
        std::thread::spawn(move || {
            let start = Instant::now();
            let mut buf = vec![0u8; size];
            for k in 0..n {
                if let Some(d) = pace(rate, start, k) {
                    std::thread::sleep(d);
                }
                loop {
                    stamp(&mut buf, k);
                    match qa.send(&buf[..]) {
                        Ok(_) => break,
                        // Full: A holds 65,536 messages the bridge has not
                        // taken yet; wait without taking its CPU.
                        Err(e) if e.is_full() => std::thread::sleep(Duration::from_micros(500)),
                        Err(e) => panic!("send on A: {e}"),
                    }
                }
            }
            start
        })
    };
    let start = tokio::task::spawn_blocking(move || writer.join())
        .await
        .map_err(|e| Fatal::other(e.to_string()))?
        .map_err(|_| Fatal::other("the writer panicked".into()))?;
    let (lat, seen, last) = tokio::task::spawn_blocking(move || reader.join())
        .await
        .map_err(|e| Fatal::other(e.to_string()))?
        .map_err(|_| Fatal::other("the reader panicked".into()))?;
    drop((_out, _in));
    let _ = js.delete_stream(&name).await;
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
    if seen < n {
        return Err(Fatal::other(format!(
            "bridge run: only {seen} of {n} messages arrived within 600 s"
        )));
    }
    Ok(Outcome {
        rate: n as f64 / last.duration_since(start).as_secs_f64(),
        lat,
    })
}

fn bench_dir(a: &BenchArgs) -> Result<PathBuf, Fatal> {
    match &a.dir {
        Some(d) => Ok(d.clone()),
        None => {
            let d = std::env::temp_dir().join(format!("shmq-bridge-bench-{}", std::process::id()));
            std::fs::create_dir_all(&d)
                .map_err(|e| Fatal::other(format!("{}: {e}", d.display())))?;
            Ok(d)
        }
    }
}

/// Each bridge alone: the out-bridge drains a queue holding every message
/// into a stream nobody reads; then the in-bridge drains that stream into
/// an empty queue. Shows which half bounds the pipeline.
async fn halves(a: &BenchArgs, js: &jetstream::Context) -> Result<(), Fatal> {
    let dir = bench_dir(a)?;
    let (pa, pb) = (dir.join("half-a.q"), dir.join("half-b.q"));
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
    let n = a.messages;
    let cfg = Config::default()
        .slots((n as u32).next_power_of_two().max(1024))
        .slot_size(a.size as u32);
    let qa = Queue::create(&pa, &cfg).map_err(|e| Fatal::queue(e.to_string()))?;
    let qb = Queue::create(&pb, &cfg).map_err(|e| Fatal::queue(e.to_string()))?;
    let mut buf = vec![0u8; a.size];
    for k in 0..n {
        stamp(&mut buf, k);
        qa.send(&buf[..]).map_err(|e| Fatal::queue(e.to_string()))?;
    }
    let name = format!("BENCH_HALF_{}", std::process::id());
    let subject = format!("bench.half.{}", std::process::id());
    let _ = js.delete_stream(&name).await;
    let exe = std::env::current_exe().map_err(|e| Fatal::other(e.to_string()))?;
    let s = |x: &str| x.to_string();
    let common = [
        s("--server"),
        a.server.clone(),
        s("--stream"),
        name.clone(),
        s("--status-every"),
        s("0"),
    ];
    let start = Instant::now();
    let out = Command::new(&exe)
        .args([
            s("out"),
            s("--queue"),
            pa.display().to_string(),
            s("--subject"),
            subject,
            s("--window"),
            a.window.to_string(),
        ])
        .args(&common)
        .stdout(Stdio::null())
        .spawn()
        .map(Kid)
        .map_err(|e| Fatal::other(format!("start out-bridge: {e}")))?;
    loop {
        if let Ok(mut st) = js.get_stream(&name).await {
            if st.info().await.map(|i| i.state.messages).unwrap_or(0) >= n {
                break;
            }
        }
        if start.elapsed() > Duration::from_secs(600) {
            return Err(Fatal::other("out half: not done in 600 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let out_s = start.elapsed().as_secs_f64();
    drop(out);
    let start = Instant::now();
    let _in = Command::new(&exe)
        .args([
            s("in"),
            s("--queue"),
            pb.display().to_string(),
            s("--consumer"),
            s("half"),
            s("--batch"),
            a.batch.to_string(),
            s("--max-deliver"),
            s("0"),
        ])
        .args(&common)
        .stdout(Stdio::null())
        .spawn()
        .map(Kid)
        .map_err(|e| Fatal::other(format!("start in-bridge: {e}")))?;
    while qb.stats().sent < n {
        if start.elapsed() > Duration::from_secs(600) {
            return Err(Fatal::other("in half: not done in 600 s".into()));
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let in_s = start.elapsed().as_secs_f64();
    println!(
        "out-bridge alone {:>10.0} msg/s  (queue A holding {n} -> stream)",
        n as f64 / out_s
    );
    println!(
        "in-bridge alone  {:>10.0} msg/s  (stream holding {n} -> queue B)",
        n as f64 / in_s
    );
    let _ = js.delete_stream(&name).await;
    let _ = std::fs::remove_file(&pa);
    let _ = std::fs::remove_file(&pb);
    Ok(())
}
