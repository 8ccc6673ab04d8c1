//! The whole story in one command, on temporary queue files, in about 20 s.
//!
//! `cargo run --release --example demo` (`--quick` runs it in about 8 s).
//!
//! A shop's checkout handler (this process) takes 40 orders a second and
//! puts each on three queues: email, warehouse, analytics. Consumer processes
//! work through them while, act by act:
//!
//! 1. all is well;
//! 2. the email service goes down (one order comes in with no address);
//! 3. it comes back and drains its backlog; the order with no address fails
//!    on every delivery and is dead-lettered; an alert fires;
//! 4. the warehouse slows down; workers are added: 1, 2, then 5;
//! 5. a warehouse worker is SIGKILLed holding a lease; the message comes
//!    back after the visibility timeout and another worker does it;
//! 6. analytics fails on some orders: timeouts (retried) and orders it
//!    can never handle (dead-lettered);
//! 7. the email bug is fixed and its dead letter redriven.
//!
//! Throughout, the checkout handler's latency stays in microseconds. At the
//! end every message sent is checked against the consumers' journals and the
//! dead letters: acked exactly once or dead, never leased by two consumers at
//! once, none lost.
//!
//! On a terminal the queue table is redrawn in place; otherwise it prints
//! plain lines.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use shmq::{Config, Queue};

const SERVICES: [&str; 3] = ["email", "warehouse", "analytics"];
const EMAIL: usize = 0;
const WAREHOUSE: usize = 1;
const ANALYTICS: usize = 2;
const MAX_RECEIVES: u32 = 3;
/// Time between two orders: 40 a second.
const TICK: Duration = Duration::from_millis(25);

fn main() -> Res {
    if let Some((role, name, dir, _)) = role() {
        return match role.as_str() {
            "email" => email(&name, &dir),
            "warehouse" => warehouse(&name, &dir),
            "analytics" => analytics(&name, &dir),
            other => Err(format!("unknown role {other}").into()),
        };
    }
    Demo::new()?.run()
}

fn visibility() -> Duration {
    pick(ms(500), ms(1000))
}

fn backoff() -> Duration {
    pick(ms(100), ms(250))
}

/// The seconds of an act, scaled down in quick mode.
fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s * pick(0.4, 1.0))
}

// ------------------------------------------------------------ consumers

/// The email service: 100 emails a second. An order with no address fails
/// until the `email-fixed` flag is set.
fn email(name: &str, dir: &Path) -> Res {
    serve(name, dir, "email.q", false, |job| {
        if job.field("email") == Some("") && !has_flag(dir, "email-fixed") {
            return Ok(Outcome::Retry(backoff(), "no recipient".into()));
        }
        std::thread::sleep(ms(10));
        Ok(Outcome::Ack)
    })
}

/// A warehouse worker: fast, or 20 orders a second while `warehouse-slow`
/// is set; with `hold-NAME` set it takes one order and hangs holding it.
fn warehouse(name: &str, dir: &Path) -> Res {
    let hold = format!("hold-{name}");
    serve(name, dir, "warehouse.q", false, |job| {
        if has_flag(dir, &hold) {
            job.hold_until_killed()?;
        }
        let slow = has_flag(dir, "warehouse-slow");
        std::thread::sleep(ms(if slow { 50 } else { 4 }));
        Ok(Outcome::Ack)
    })
}

/// Analytics: an unknown currency always fails; a flaky order fails on its
/// first delivery.
fn analytics(name: &str, dir: &Path) -> Res {
    serve(name, dir, "analytics.q", false, |job| {
        if !["EUR", "USD", "GBP"].contains(&job.field("currency").unwrap_or("")) {
            return Ok(Outcome::Retry(backoff(), "unknown currency".into()));
        }
        if job.field("flaky") == Some("1") && job.receives() == 1 {
            return Ok(Outcome::Retry(backoff(), "database timeout".into()));
        }
        std::thread::sleep(ms(2));
        Ok(Outcome::Ack)
    })
}

// ------------------------------------------------------------------ shop

/// What the orders of the current act look like.
#[derive(Clone, Copy, PartialEq)]
enum Mix {
    Normal,
    /// Every fifth order in an unknown currency, every fifth a flaky one.
    Troubled,
}

struct Demo {
    _tmp: tempfile::TempDir,
    dir: PathBuf,
    queues: Vec<Queue>,
    sent: Vec<Vec<u64>>,
    procs: Procs,
    live: Live,
    start: Instant,
    act: String,
    // checkout
    ordering: bool,
    orders: u64,
    next_order: Instant,
    mix: Mix,
    poison_next: bool,
    poison_id: Option<u64>,
    bad: u64,
    flaky: u64,
    latency: Latencies,
    // display
    next_draw: Instant,
    next_plain: Instant,
    dlq_alerted: [u64; 3],
    last_alert: [Option<Instant>; 3],
}

impl Demo {
    fn new() -> Res<Demo> {
        let tmp = tempfile::tempdir()?;
        let dir = tmp.path().to_path_buf();
        let cfg = Config::default()
            .slots(2048)
            .slot_size(256)
            .visibility_timeout(visibility())
            .max_receives(MAX_RECEIVES);
        let mut queues = Vec::new();
        for s in SERVICES {
            queues.push(Queue::create(dir.join(format!("{s}.q")), &cfg)?);
        }
        let now = Instant::now();
        Ok(Demo {
            procs: Procs::new(&dir),
            _tmp: tmp,
            dir,
            queues,
            sent: vec![Vec::new(); 3],
            live: Live::new(),
            start: now,
            act: String::new(),
            ordering: true,
            orders: 0,
            next_order: now,
            mix: Mix::Normal,
            poison_next: false,
            poison_id: None,
            bad: 0,
            flaky: 0,
            latency: Latencies::default(),
            next_draw: now,
            next_plain: now,
            dlq_alerted: [0; 3],
            last_alert: [None; 3],
        })
    }

    /// The checkout handler: put the order on the three queues and return.
    fn checkout(&mut self) -> Res {
        self.orders += 1;
        let n = self.orders;
        let poison = std::mem::take(&mut self.poison_next);
        let email = if poison {
            String::new()
        } else {
            format!("c{}@example.com", n % 97)
        };
        let mut extra = "currency=EUR";
        if self.mix == Mix::Troubled {
            match n % 5 {
                0 => {
                    extra = "currency=XYZ";
                    self.bad += 1;
                }
                2 => {
                    extra = "currency=EUR flaky=1";
                    self.flaky += 1;
                }
                _ => {}
            }
        }
        let order = format!(
            "order={n} customer=c{} email={email} total={}.{:02} {extra}",
            n % 97,
            10 + n % 90,
            n % 100
        );
        let t = Instant::now();
        for (q, ids) in self.queues.iter().zip(&mut self.sent) {
            ids.push(q.send(order.as_bytes())?);
        }
        self.latency.push(t.elapsed());
        if poison {
            self.poison_id = self.sent[EMAIL].last().copied();
        }
        Ok(())
    }

    fn say(&mut self, line: impl std::fmt::Display) -> Res {
        let t = self.start.elapsed().as_secs_f64();
        self.live.event(format!("[{t:>5.1}s] {line}"))
    }

    fn begin(&mut self, act: &str, what: &str) -> Res {
        self.act = act.to_string();
        self.live.event("")?;
        self.say(format!("{act}: {what}"))
    }

    /// One turn of the loop: take the orders that are due, redraw if due,
    /// then sleep until the next thing to do.
    fn turn(&mut self) -> Res {
        let now = Instant::now();
        if self.ordering && now >= self.next_order {
            self.checkout()?;
            self.next_order += TICK;
        }
        if now >= self.next_draw {
            self.draw()?;
            self.next_draw += ms(100);
        }
        let mut wake = self.next_draw.min(now + ms(20));
        if self.ordering {
            wake = wake.min(self.next_order);
        }
        std::thread::sleep(wake.saturating_duration_since(Instant::now()));
        Ok(())
    }

    /// Keep the shop running for at least `min`, then until `done` holds
    /// (checked every 20 ms); an error after `max`.
    fn run_until(
        &mut self,
        what: &str,
        min: Duration,
        max: Duration,
        mut done: impl FnMut(&mut Demo) -> Res<bool>,
    ) -> Res {
        let start = Instant::now();
        let mut next_check = start;
        loop {
            self.turn()?;
            if Instant::now() >= next_check {
                next_check += ms(20);
                if start.elapsed() >= min && done(self)? {
                    return Ok(());
                }
            }
            if start.elapsed() > max {
                return Err(format!("timed out after {max:?} waiting for {what}").into());
            }
        }
    }

    fn run_for(&mut self, d: Duration) -> Res {
        self.run_until("", d, d + Duration::from_secs(5), |_| Ok(true))
    }

    /// The queue table, alerts, and on plain output a status line.
    fn draw(&mut self) -> Res {
        let stats: Vec<shmq::Stats> = self.queues.iter().map(|q| q.stats()).collect();
        for (i, s) in stats.iter().enumerate() {
            let throttle = pick(ms(400), ms(1000));
            let quiet = self.last_alert[i].is_some_and(|t| t.elapsed() < throttle);
            if s.dead > self.dlq_alerted[i] && !quiet {
                self.dlq_alerted[i] = s.dead;
                self.last_alert[i] = Some(Instant::now());
                self.say(format!(
                    "ALERT {}.q: dead-letter depth {}",
                    SERVICES[i], s.dead
                ))?;
            }
            if s.dead < self.dlq_alerted[i] {
                self.dlq_alerted[i] = s.dead;
            }
        }
        let t = self.start.elapsed().as_secs_f64();
        let rows: Vec<Vec<String>> = SERVICES
            .iter()
            .zip(&stats)
            .map(|(name, s)| {
                vec![
                    name.to_string(),
                    (s.visible + s.delayed).to_string(),
                    s.in_flight.to_string(),
                    s.acked.to_string(),
                    s.redelivered.to_string(),
                    s.dead.to_string(),
                    self.procs.running(name).len().to_string(),
                ]
            })
            .collect();
        let mut block = vec![format!("t={t:>5.1}s  act {}", self.act)];
        block.extend(
            table(
                &[
                    "queue",
                    "waiting",
                    "in flight",
                    "acked",
                    "redelivered",
                    "dead",
                    "consumers",
                ],
                &rows,
            )
            .into_iter()
            .map(|l| format!("  {l}")),
        );
        block.push(format!(
            "  checkout: {} orders, handler p50 {}, p99 {}",
            self.orders,
            us(self.latency.pct(50.0)),
            us(self.latency.pct(99.0))
        ));
        self.live.update(block)?;
        if Instant::now() >= self.next_plain {
            self.next_plain += pick(ms(500), ms(1000));
            let q: Vec<String> = SERVICES
                .iter()
                .zip(&stats)
                .map(|(n, s)| format!("{n} {}+{}/{}", s.visible + s.delayed, s.in_flight, s.dead))
                .collect();
            self.live.plain(format!(
                "[{t:>5.1}s]   waiting+in flight/dead: {} | orders {}, handler p99 {}",
                q.join(", "),
                self.orders,
                us(self.latency.pct(99.0))
            ))?;
        }
        Ok(())
    }

    fn acked_by(&self, service: &str, id: u64) -> Res<Option<Delivered>> {
        Ok(deliveries(&self.dir, service)?
            .into_iter()
            .find(|d| d.id == id && matches!(d.end, Some(('A', _)))))
    }

    fn run(mut self) -> Res {
        let tty = self.live.tty();
        println!(
            "shmq demo: a shop's checkout puts every order on three queues (email, warehouse, analytics) in {}",
            self.dir.display()
        );
        println!(
            "40 orders/s; visibility timeout {} ms; max receives {MAX_RECEIVES}{}",
            visibility().as_millis(),
            if tty {
                ""
            } else {
                "; a status line each second"
            }
        );
        let dir = self.dir.clone();
        self.procs.start("email", "email", &[])?;
        self.procs.start("warehouse", "warehouse-1", &[])?;
        self.procs.start("analytics", "analytics", &[])?;

        self.begin("1/7 steady", "every service keeps up")?;
        self.run_for(secs(2.0))?;

        self.begin("2/7 email down", "its queue fills up; checkout carries on")?;
        self.procs.stop("email")?;
        self.poison_next = true;
        self.run_for(secs(3.0))?;

        self.begin(
            "3/7 email back",
            "the backlog drains; one email has no address",
        )?;
        self.procs.start("email", "email", &[])?;
        self.run_until(
            "the email with no address to be dead-lettered",
            secs(2.5),
            Duration::from_secs(20),
            |d| Ok(d.queues[EMAIL].stats().dead > 0),
        )?;
        for dl in self.queues[EMAIL].dead_letters() {
            self.say(format!(
                "  dead letter {} after {} deliveries: {}",
                dl.id,
                dl.receives,
                String::from_utf8_lossy(&dl.payload)
            ))?;
        }

        self.begin(
            "4/7 warehouse slow",
            "20 picks/s per worker, 40 orders/s coming in",
        )?;
        set_flag(&dir, "warehouse-slow", true)?;
        self.run_for(secs(2.0))?;
        self.say("  scale out: 2 warehouse workers")?;
        self.procs.start("warehouse", "warehouse-2", &[])?;
        self.run_for(secs(2.0))?;
        self.say("  scale out: 5 warehouse workers")?;
        for k in 3..=5 {
            self.procs
                .start("warehouse", &format!("warehouse-{k}"), &[])?;
        }
        self.run_for(secs(2.0))?;

        self.begin("5/7 crash", "a warehouse worker is SIGKILLed mid-order")?;
        set_flag(&dir, "hold-warehouse-3", true)?;
        let mut held = None;
        self.run_until(
            "warehouse-3 to take an order",
            Duration::ZERO,
            Duration::from_secs(10),
            |d| {
                held = deliveries(&d.dir, "warehouse-3")?
                    .into_iter()
                    .find(|x| x.held);
                Ok(held.is_some())
            },
        )?;
        let held = held.ok_or("warehouse-3 held nothing")?;
        let pid = self.procs.kill("warehouse-3")?;
        let killed = Instant::now();
        self.say(format!(
            "  SIGKILL warehouse-3 (pid {pid}) holding message {}; the next sweep finds it gone (its lease would run out in {} ms)",
            held.id,
            held.deadline.saturating_sub(shmq::now_ms())
        ))?;
        let mut again = None;
        self.run_until(
            "the killed worker's message to be done by another",
            Duration::ZERO,
            visibility() + Duration::from_secs(10),
            |d| {
                again = d.acked_by("warehouse", held.id)?;
                Ok(again.is_some())
            },
        )?;
        let again = again.ok_or("not redelivered")?;
        self.say(format!(
            "  message {} delivered again to {} (delivery {}) {} ms after the kill, and acked",
            held.id,
            again.worker,
            again.receives,
            killed.elapsed().as_millis()
        ))?;
        set_flag(&dir, "warehouse-slow", false)?;
        self.run_for(secs(0.5))?;

        self.begin(
            "6/7 analytics trouble",
            "timeouts (retried), unknown currency (dead)",
        )?;
        self.mix = Mix::Troubled;
        self.run_for(secs(3.0))?;
        self.mix = Mix::Normal;

        self.begin(
            "7/7 fix and redrive",
            "the mailer now reads the customer record",
        )?;
        set_flag(&dir, "email-fixed", true)?;
        let mut redriven = 0;
        for dl in self.queues[EMAIL].dead_letters() {
            self.queues[EMAIL].redrive(dl.id)?;
            redriven += 1;
            self.say(format!("  redrive email message {}", dl.id))?;
        }
        let poison = self.poison_id.ok_or("no poison order was sent")?;
        self.run_until(
            "the redriven email to go out",
            secs(1.5),
            Duration::from_secs(20),
            |d| Ok(d.acked_by("email", poison)?.is_some()),
        )?;
        self.say(format!("  email message {poison} sent"))?;

        self.live.event("")?;
        self.act = "closing".into();
        self.say("checkout closes; the consumers finish what is queued")?;
        self.ordering = false;
        self.run_until(
            "every queue to drain",
            Duration::ZERO,
            Duration::from_secs(30),
            |d| {
                Ok(d.queues.iter().all(|q| {
                    let s = q.stats();
                    s.visible + s.delayed + s.in_flight == 0
                }))
            },
        )?;
        self.draw()?;
        self.live.finish();
        self.procs.stop_all()?;
        self.report(redriven, held.id, again.receives)
    }

    fn report(&self, redriven: usize, crashed_id: u64, crashed_receives: u32) -> Res {
        let mut rows = Vec::new();
        let mut total = Audit::default();
        let (mut redelivered, mut dead_lettered) = (0, 0);
        let mut per = Vec::new();
        for (i, name) in SERVICES.iter().enumerate() {
            let q = &self.queues[i];
            let a = audit(&self.sent[i], q, &deliveries(&self.dir, name)?);
            let s = q.stats();
            rows.push(vec![
                name.to_string(),
                a.sent.to_string(),
                a.acked.to_string(),
                s.redelivered.to_string(),
                s.dead_lettered.to_string(),
                a.in_dlq.to_string(),
                a.lost.len().to_string(),
            ]);
            redelivered += s.redelivered;
            dead_lettered += s.dead_lettered;
            total.add(&a);
            per.push(a);
        }
        rows.push(vec![
            "total".into(),
            total.sent.to_string(),
            total.acked.to_string(),
            redelivered.to_string(),
            dead_lettered.to_string(),
            total.in_dlq.to_string(),
            total.lost.len().to_string(),
        ]);
        println!();
        println!(
            "Summary ({:.1} s, {} processes)",
            self.start.elapsed().as_secs_f64(),
            1 + self.procs.started()
        );
        for l in table(
            &[
                "queue",
                "sent",
                "acked",
                "redelivered",
                "dead-lettered",
                "in DLQ",
                "lost",
            ],
            &rows,
        ) {
            println!("  {l}");
        }
        let (p50, p99) = (self.latency.pct(50.0), self.latency.pct(99.0));
        println!(
            "  checkout handler ({} orders, 3 sends each): p50 {}, p99 {}",
            self.latency.len(),
            us(p50),
            us(p99)
        );
        println!(
            "  lost = sent and neither acked nor in the DLQ, checked message by message: {}",
            total.lost.len()
        );
        println!(
            "  leased by two consumers at once: {}; acked twice: {}",
            total.overlaps, total.double_acks
        );
        summary(&[
            ("orders", self.orders.to_string()),
            ("sent", total.sent.to_string()),
            ("acked", total.acked.to_string()),
            (
                "queue_acked",
                self.queues
                    .iter()
                    .map(|q| q.stats().acked)
                    .sum::<u64>()
                    .to_string(),
            ),
            ("redelivered", redelivered.to_string()),
            ("dead_lettered", dead_lettered.to_string()),
            ("dlq", total.in_dlq.to_string()),
            ("lost", total.lost.len().to_string()),
            ("overlaps", total.overlaps.to_string()),
            ("double_acks", total.double_acks.to_string()),
            ("strangers", total.strangers.to_string()),
            ("email_acked", per[EMAIL].acked.to_string()),
            ("warehouse_acked", per[WAREHOUSE].acked.to_string()),
            ("analytics_acked", per[ANALYTICS].acked.to_string()),
            ("analytics_dead", per[ANALYTICS].in_dlq.to_string()),
            ("bad_orders", self.bad.to_string()),
            ("flaky_orders", self.flaky.to_string()),
            ("redriven", redriven.to_string()),
            ("crashed_id", crashed_id.to_string()),
            ("crashed_redelivery", crashed_receives.to_string()),
            ("p50_us", format!("{:.1}", p50.as_nanos() as f64 / 1000.0)),
            ("p99_us", format!("{:.1}", p99.as_nanos() as f64 / 1000.0)),
        ]);
        if !total.clean() {
            return Err(format!("audit failed: {total:?}").into());
        }
        Ok(())
    }
}
