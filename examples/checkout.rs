//! The checkout handler from the primer, as real processes.
//!
//! `cargo run --release --example checkout` (add `--quick` for a short run).
//!
//! The handler (this process) puts each order on three queues, one per
//! downstream service, and returns: its latency is three sends, a few
//! microseconds. Three consumer processes (email, warehouse, analytics) work
//! at their own pace. In turn:
//!
//! 1. the email service is down: its queue fills up, checkout is unaffected;
//! 2. it comes back: its backlog drains;
//! 3. the warehouse is slow (each pick outlasts the visibility timeout, so
//!    it extends its lease as a heartbeat): checkout is still fast;
//! 4. analytics fails on some orders: a transient failure is retried (nack)
//!    and succeeds; an order it can never handle is dead-lettered after max
//!    receives.
//!
//! At the end every order on every queue is accounted for: acked once, or
//! dead-lettered.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use shmq::{Config, Queue};

const SERVICES: [&str; 3] = ["email", "warehouse", "analytics"];

fn main() -> Res {
    if let Some((role, name, dir, _)) = role() {
        return match role.as_str() {
            "email" => email(&name, &dir),
            "warehouse" => warehouse(&name, &dir),
            "analytics" => analytics(&name, &dir),
            other => Err(format!("unknown role {other}").into()),
        };
    }
    checkout()
}

fn visibility() -> Duration {
    pick(ms(400), ms(1000))
}

// ------------------------------------------------------------ consumers

/// Sends the confirmation email: faster than orders come, not by much.
fn email(name: &str, dir: &Path) -> Res {
    let work = pick(ms(10), ms(25));
    serve(name, dir, "email.q", true, |_job| {
        std::thread::sleep(work);
        Ok(Outcome::Ack)
    })
}

/// Picks and packs the order. While the `warehouse-slow` flag is set a pick
/// takes three steps that together outlast the visibility timeout, so the
/// worker extends its lease before each step (a heartbeat).
fn warehouse(name: &str, dir: &Path) -> Res {
    let step = visibility() * 3 / 8;
    serve(name, dir, "warehouse.q", true, |job| {
        if !has_flag(dir, "warehouse-slow") {
            std::thread::sleep(ms(3));
            return Ok(Outcome::Ack);
        }
        let t = Instant::now();
        for _ in 0..3 {
            if !job.extend(visibility())? {
                return Ok(Outcome::Lost);
            }
            std::thread::sleep(step);
        }
        println!(
            "  [warehouse] order {} packed in {} ms, longer than the {} ms visibility timeout: lease extended 3 times",
            job.field("order").unwrap_or("?"),
            t.elapsed().as_millis(),
            visibility().as_millis()
        );
        Ok(Outcome::Ack)
    })
}

/// Records the order. Fails on an unknown currency (every time: a bug for
/// later) and on orders marked flaky (first delivery only: a timeout).
fn analytics(name: &str, dir: &Path) -> Res {
    let backoff = pick(ms(100), ms(300));
    serve(name, dir, "analytics.q", true, |job| {
        let currency = job.field("currency").unwrap_or("");
        if !["EUR", "USD", "GBP"].contains(&currency) {
            let why = format!(
                "order {}: unknown currency {currency:?}",
                job.field("order").unwrap_or("?")
            );
            return Ok(Outcome::Retry(backoff, why));
        }
        if job.field("flaky") == Some("1") && job.receives() == 1 {
            let why = format!(
                "order {}: analytics database timed out",
                job.field("order").unwrap_or("?")
            );
            return Ok(Outcome::Retry(backoff, why));
        }
        std::thread::sleep(ms(2));
        Ok(Outcome::Ack)
    })
}

// ------------------------------------------------------------- checkout

/// The three queues and the ids sent to each.
struct Downstream {
    queues: Vec<Queue>,
    sent: Vec<Vec<u64>>,
}

impl Downstream {
    /// The checkout handler: enqueue the order for every service, return.
    fn handle(&mut self, order: &str) -> Res<Duration> {
        let t = Instant::now();
        for (q, ids) in self.queues.iter().zip(&mut self.sent) {
            ids.push(q.send(order.as_bytes())?);
        }
        Ok(t.elapsed())
    }

    /// Messages not yet done (visible, delayed or leased), per queue.
    fn backlog(&self) -> Vec<u64> {
        self.queues
            .iter()
            .map(|q| {
                let s = q.stats();
                s.visible + s.delayed + s.in_flight
            })
            .collect()
    }

    fn status(&self) -> String {
        let b = self.backlog();
        SERVICES
            .iter()
            .zip(b)
            .map(|(s, n)| format!("{s} {n:>3}"))
            .collect::<Vec<_>>()
            .join(" | ")
    }
}

struct Shop {
    down: Downstream,
    next_order: u64,
    bad: u64,
    flaky: u64,
    all: Latencies,
    start: Instant,
}

impl Shop {
    /// Take orders at a steady pace for `length`; print the backlog as it
    /// goes and the handler latency at the end. `kind` decides what an order
    /// looks like.
    fn take_orders(&mut self, length: Duration, kind: impl Fn(u64) -> &'static str) -> Res {
        let tick = pick(ms(25), ms(50));
        let report = pick(ms(200), ms(500));
        let mut lat = Latencies::default();
        let start = Instant::now();
        let mut next = start;
        let mut next_report = start + report;
        while start.elapsed() < length {
            let n = self.next_order;
            self.next_order += 1;
            let extra = kind(n);
            match extra {
                "currency=XYZ" => self.bad += 1,
                "currency=EUR flaky=1" => self.flaky += 1,
                _ => {}
            }
            let order = format!(
                "order={n} customer=c{} email=c{}@example.com total={}.{:02} {extra}",
                n % 97,
                n % 97,
                10 + n % 90,
                n % 100,
            );
            let d = self.down.handle(&order)?;
            lat.push(d);
            self.all.push(d);
            if Instant::now() >= next_report {
                println!(
                    "  t={:>4.1}s  orders {:>3}  handler max {:>8}  | {}",
                    self.start.elapsed().as_secs_f64(),
                    self.next_order - 1,
                    us(lat.pct(100.0)),
                    self.down.status()
                );
                next_report += report;
            }
            next += tick;
            std::thread::sleep(next.saturating_duration_since(Instant::now()));
        }
        println!(
            "  checkout handler over these {} orders: p50 {}, p99 {}",
            lat.len(),
            us(lat.pct(50.0)),
            us(lat.pct(99.0))
        );
        Ok(())
    }

    /// Print the backlog until the queues of `services` are empty.
    fn drain(&self, services: &[usize], within: Duration) -> Res {
        let mut last = Instant::now();
        wait_for(
            &format!("the backlog of {services:?} to drain"),
            within,
            || {
                let b = self.down.backlog();
                let empty = services.iter().all(|&s| b[s] == 0);
                if empty || last.elapsed() >= pick(ms(200), ms(500)) {
                    println!(
                        "  t={:>4.1}s  (no new orders)                     | {}",
                        self.start.elapsed().as_secs_f64(),
                        self.down.status()
                    );
                    last = Instant::now();
                }
                Ok(empty)
            },
        )
    }
}

fn checkout() -> Res {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let cfg = Config::default()
        .slots(1024)
        .slot_size(256)
        .visibility_timeout(visibility())
        .max_receives(3);
    let mut queues = Vec::new();
    for s in SERVICES {
        queues.push(Queue::create(dir.join(format!("{s}.q")), &cfg)?);
    }
    println!(
        "checkout: queues email.q, warehouse.q, analytics.q in {} (visibility timeout {} ms, max receives 3)",
        dir.display(),
        visibility().as_millis()
    );
    let mut procs = Procs::new(dir);
    procs.start("warehouse", "warehouse", &[])?;
    procs.start("analytics", "analytics", &[])?;
    let phase = pick(ms(800), ms(3000));
    let mut shop = Shop {
        down: Downstream {
            queues,
            sent: vec![Vec::new(); 3],
        },
        next_order: 1,
        bad: 0,
        flaky: 0,
        all: Latencies::default(),
        start: Instant::now(),
    };
    let normal = |_| "currency=EUR";

    println!("\n1. The email service is down. Orders keep coming; its messages wait in its queue.");
    shop.take_orders(phase, normal)?;

    println!("\n2. The email service is back: it works through the backlog.");
    procs.start("email", "email", &[])?;
    shop.take_orders(phase, normal)?;
    shop.drain(&[0], Duration::from_secs(20))?;

    println!("\n3. The warehouse slows down. Its queue grows; checkout does not notice.");
    set_flag(dir, "warehouse-slow", true)?;
    shop.take_orders(phase, normal)?;
    set_flag(dir, "warehouse-slow", false)?;
    println!("  the warehouse is fast again:");
    shop.drain(&[1], Duration::from_secs(20))?;

    println!(
        "\n4. Analytics fails on some orders: a timeout (retried, then fine) and an unknown currency (never fine)."
    );
    shop.take_orders(phase, |n| match n % 8 {
        0 => "currency=XYZ",
        4 => "currency=EUR flaky=1",
        _ => "currency=EUR",
    })?;
    shop.drain(&[0, 1, 2], Duration::from_secs(20))?;
    procs.stop_all()?;

    println!("\nEvery order on every queue, accounted for:");
    let mut rows = Vec::new();
    let mut totals = Audit::default();
    let mut per = Vec::new();
    for (i, s) in SERVICES.iter().enumerate() {
        let q = &shop.down.queues[i];
        let a = audit(&shop.down.sent[i], q, &deliveries(dir, s)?);
        let st = q.stats();
        rows.push(vec![
            s.to_string(),
            a.sent.to_string(),
            a.acked.to_string(),
            st.redelivered.to_string(),
            a.in_dlq.to_string(),
            a.lost.len().to_string(),
        ]);
        totals.add(&a);
        per.push(a);
    }
    for l in table(
        &[
            "queue",
            "sent",
            "acked",
            "redelivered",
            "dead-lettered",
            "lost",
        ],
        &rows,
    ) {
        println!("  {l}");
    }
    println!(
        "  checkout handler, all {} orders: p50 {}, p99 {}",
        shop.all.len(),
        us(shop.all.pct(50.0)),
        us(shop.all.pct(99.0))
    );
    summary(&[
        ("orders", (shop.next_order - 1).to_string()),
        ("sent", totals.sent.to_string()),
        ("acked", totals.acked.to_string()),
        (
            "queue_acked",
            shop.down
                .queues
                .iter()
                .map(|q| q.stats().acked)
                .sum::<u64>()
                .to_string(),
        ),
        ("dead", totals.in_dlq.to_string()),
        ("lost", totals.lost.len().to_string()),
        ("overlaps", totals.overlaps.to_string()),
        ("double_acks", totals.double_acks.to_string()),
        ("strangers", totals.strangers.to_string()),
        ("email_acked", per[0].acked.to_string()),
        ("warehouse_acked", per[1].acked.to_string()),
        ("analytics_acked", per[2].acked.to_string()),
        ("analytics_dead", per[2].in_dlq.to_string()),
        ("bad_orders", shop.bad.to_string()),
        ("flaky_orders", shop.flaky.to_string()),
    ]);
    if !totals.clean() {
        return Err(format!("audit failed: {totals:?}").into());
    }
    Ok(())
}
