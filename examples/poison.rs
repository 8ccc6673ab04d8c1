//! A poison message: retried, dead-lettered, fixed, redriven.
//!
//! `cargo run --release --example poison` (add `--quick` for a short run).
//!
//! The mailer process sends order confirmations. One order was created with
//! no email address (a bug in order creation): the mailer fails on it every
//! time and nacks it. After max receives (3) the queue moves it to the dead
//! letters, and the other emails keep flowing meanwhile. The parent, playing
//! the monitoring system, raises an alert when the dead-letter depth goes
//! above zero. The bug is fixed (a flag: the mailer now looks the address up
//! in the customer record), the message is redriven, and this time it goes
//! through.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;
use shmq::{Config, Queue};

const MAX_RECEIVES: u32 = 3;

fn main() -> Res {
    if let Some((role, name, dir, _)) = role() {
        if role != "mailer" {
            return Err(format!("unknown role {role}").into());
        }
        return mailer(&name, &dir);
    }
    operate()
}

fn mailer(name: &str, dir: &Path) -> Res {
    let backoff = pick(ms(150), ms(500));
    serve(name, dir, "email.q", true, |job| {
        let to = job.field("to").unwrap_or("");
        if to.is_empty() {
            if !has_flag(dir, "fixed") {
                return Ok(Outcome::Retry(
                    backoff,
                    format!(
                        "order {}: InvalidRecipient (no address)",
                        job.field("order").unwrap_or("?")
                    ),
                ));
            }
            let customer = job.field("customer").unwrap_or("?");
            println!(
                "  [{name}] message {}: order {}: no address in the message, {customer}@example.com from the customer record: sent",
                job.id(),
                job.field("order").unwrap_or("?")
            );
        }
        std::thread::sleep(ms(5));
        Ok(Outcome::Ack)
    })
}

fn operate() -> Res {
    let dir = tempfile::tempdir()?;
    let dir = dir.path();
    let q = Queue::create(
        dir.join("email.q"),
        &Config::default()
            .slots(256)
            .slot_size(256)
            .visibility_timeout(pick(ms(400), ms(2000)))
            .max_receives(MAX_RECEIVES),
    )?;
    let emails: u64 = pick(40, 80);
    let tick = pick(ms(30), ms(60));
    let poison_order = 5;
    println!(
        "poison: {emails} order confirmations, one every {} ms; order {poison_order} has no email address",
        tick.as_millis()
    );
    let mut procs = Procs::new(dir);
    procs.start("mailer", "mailer", &[])?;

    let mut sent = Vec::new();
    let mut alerted = false;
    let start = Instant::now();
    let mut next = start;
    let mut next_status = start + pick(ms(300), ms(1000));
    for n in 1..=emails {
        let to = if n == poison_order {
            String::new()
        } else {
            format!("c{n}@example.com")
        };
        let body = format!("order={n} customer=c{n} to={to} subject=your-order-{n}");
        sent.push(q.send(&body)?);
        let s = q.stats();
        if s.dead > 0 && !alerted {
            alerted = true;
            alert(&q);
        }
        if Instant::now() >= next_status {
            println!(
                "  t={:>4.1}s  sent {:>3}  acked {:>3}  waiting {:>2}  dead letters {}",
                start.elapsed().as_secs_f64(),
                s.sent,
                s.acked,
                s.visible + s.delayed + s.in_flight,
                s.dead
            );
            next_status += pick(ms(300), ms(1000));
        }
        next += tick;
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    wait_for(
        "every other email to go out",
        Duration::from_secs(20),
        || {
            let s = q.stats();
            Ok(s.visible + s.delayed + s.in_flight == 0)
        },
    )?;
    if !alerted {
        alert(&q);
    }
    let s = q.stats();
    println!(
        "  all sent: {} acked, {} in the dead letters; the queue itself is healthy",
        s.acked, s.dead
    );

    println!(
        "  (from a shell: shmq dlq list {})",
        dir.join("email.q").display()
    );
    println!(
        "\nThe fix: the mailer falls back to the customer record when an order has no address."
    );
    set_flag(dir, "fixed", true)?;
    let dead: Vec<u64> = q.dead_letters().into_iter().map(|d| d.id).collect();
    for id in &dead {
        q.redrive(*id)?;
        println!("  redrive message {id} (from a shell: shmq dlq redrive --id {id} PATH)");
    }
    wait_for(
        "the redriven email to go out",
        Duration::from_secs(20),
        || {
            let s = q.stats();
            Ok(s.visible + s.delayed + s.in_flight + s.dead == 0)
        },
    )?;
    procs.stop_all()?;

    let a = audit(&sent, &q, &deliveries(dir, "mailer")?);
    let s = q.stats();
    let poison_deliveries = deliveries(dir, "mailer")?
        .iter()
        .filter(|d| d.id == sent[poison_order as usize - 1])
        .count();
    println!(
        "\n{} emails sent, {} acked, {} dead-lettered on the way and redriven, {} lost; the poison message was delivered {} times",
        a.sent,
        a.acked,
        s.dead_lettered,
        a.lost.len(),
        poison_deliveries
    );
    summary(&[
        ("sent", a.sent.to_string()),
        ("acked", a.acked.to_string()),
        ("queue_acked", s.acked.to_string()),
        ("dead_lettered", s.dead_lettered.to_string()),
        ("redriven", dead.len().to_string()),
        ("dlq", s.dead.to_string()),
        ("lost", a.lost.len().to_string()),
        ("overlaps", a.overlaps.to_string()),
        ("double_acks", a.double_acks.to_string()),
        ("strangers", a.strangers.to_string()),
        ("poison_deliveries", poison_deliveries.to_string()),
    ]);
    if !a.clean() {
        return Err(format!("audit failed: {a:?}").into());
    }
    Ok(())
}

/// What the monitoring system prints when the dead-letter depth is above 0.
fn alert(q: &Queue) {
    let dead = q.dead_letters();
    println!("ALERT email.q: dead-letter depth {}", dead.len());
    for d in dead {
        println!(
            "  dead letter: message {} after {} deliveries ({}): {}",
            d.id,
            d.receives,
            d.reason.name(),
            String::from_utf8_lossy(&d.payload)
        );
    }
}
