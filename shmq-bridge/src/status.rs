//! What a bridge reports: counters, the connection, the last error. Printed
//! as one JSON line on stdout every `--status-every` (and once at exit), so
//! a supervisor or `jq` reads it; errors also go to stderr as they happen.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde_json::{json, Map, Value};

/// Counters of one bridge, shared by its tasks and threads (a cheap clone).
#[derive(Clone)]
pub struct Status(Arc<Inner>);

pub struct Inner {
    started: Instant,
    connected: AtomicBool,
    /// Named counters, fixed at construction (each bridge has its own set).
    counters: Vec<(&'static str, AtomicU64)>,
    last_error: Mutex<Option<(Instant, String)>>,
    /// Rate bookkeeping: the counter named `rate_of`, at the last report.
    rate_of: &'static str,
    last_report: Mutex<(Instant, u64)>,
}

impl Status {
    /// A status with the given counters; `rate_of` names the one whose rate
    /// per second each report shows.
    pub fn new(names: &[&'static str], rate_of: &'static str) -> Status {
        let now = Instant::now();
        Status(Arc::new(Inner {
            started: now,
            connected: AtomicBool::new(false),
            counters: names.iter().map(|n| (*n, AtomicU64::new(0))).collect(),
            last_error: Mutex::new(None),
            rate_of,
            last_report: Mutex::new((now, 0)),
        }))
    }

    fn counter(&self, name: &str) -> &AtomicU64 {
        &self
            .0
            .counters
            .iter()
            .find(|(n, _)| *n == name)
            .unwrap_or_else(|| panic!("no counter {name}"))
            .1
    }

    /// Add `n` to the counter `name`.
    pub fn add(&self, name: &str, n: u64) {
        self.counter(name).fetch_add(n, Relaxed);
    }

    /// The counter `name`.
    pub fn get(&self, name: &str) -> u64 {
        self.counter(name).load(Relaxed)
    }

    pub fn set_connected(&self, up: bool) {
        self.0.connected.store(up, Relaxed);
    }

    pub fn connected(&self) -> bool {
        self.0.connected.load(Relaxed)
    }

    /// Record an error (and print it on stderr).
    pub fn error(&self, text: String) {
        eprintln!("shmq-bridge: {text}");
        *self.0.last_error.lock().expect("status lock") = Some((Instant::now(), text));
    }

    /// One JSON object: every counter, the connection, the rate, the last
    /// error and its age, plus the `extra` fields the bridge adds (lag, in
    /// flight).
    pub fn report(&self, bridge: &str, extra: Map<String, Value>) -> Value {
        let now = Instant::now();
        let mut o = Map::new();
        o.insert("bridge".into(), json!(bridge));
        o.insert(
            "uptime_s".into(),
            json!(round1(now.duration_since(self.0.started).as_secs_f64())),
        );
        o.insert("connected".into(), json!(self.connected()));
        for (n, c) in &self.0.counters {
            o.insert((*n).into(), json!(c.load(Relaxed)));
        }
        {
            let mut last = self.0.last_report.lock().expect("status lock");
            let v = self.get(self.0.rate_of);
            let dt = now.duration_since(last.0).as_secs_f64();
            let rate = if dt > 0.0 {
                (v - last.1) as f64 / dt
            } else {
                0.0
            };
            o.insert(format!("{}_per_s", self.0.rate_of), json!(round1(rate)));
            *last = (now, v);
        }
        o.extend(extra);
        let last = self.0.last_error.lock().expect("status lock");
        match &*last {
            Some((at, text)) => {
                o.insert("last_error".into(), json!(text));
                o.insert(
                    "last_error_age_s".into(),
                    json!(round1(now.duration_since(*at).as_secs_f64())),
                );
            }
            None => {
                o.insert("last_error".into(), Value::Null);
            }
        }
        Value::Object(o)
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}
