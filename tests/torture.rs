//! kill -9 soak (issue 3, torture item 1): four producer and four consumer
//! processes on one queue file; a supervisor SIGKILLs a random one every 5 to
//! 50 ms and restarts it. At the end a clean consumer drains the queue and a
//! checker reads every journal and proves, message by message:
//!
//! - **lost = 0**: every message whose send returned `Ok` (journaled `S`) was
//!   acked (journaled `A`, or acked by the drain);
//! - **corrupt = 0**: every delivered payload passes its own checksum and is
//!   the payload its sender sent under that id;
//! - **acks accepted from a non-holder = 0**: no message id and no receipt
//!   was acked twice, no message was delivered again after an ack of it was
//!   accepted, and the deliberate stale acks the consumers try (the receipt
//!   of a lease they just acked or nacked) were all refused;
//! - **slots stuck after the drain = 0**: every slot is free, and a
//!   `recover` scan agrees.
//!
//! It also counts duplicates (at-least-once redeliveries) and measures the
//! time from a consumer's death to the redelivery of the messages it held.
//!
//! The short form runs in `cargo test` (200 kills). The long form
//! (`scripts/torture-long.sh`, 10 000 kills) is the ignored test
//! `soak_long`. `SHMQ_SEED` replays a run's choices (victims, pauses and the
//! children's random decisions; not the kernel's scheduling).
//!
//! # Journals
//!
//! One file per process incarnation, `p<idx>.<inc>.log` / `c<idx>.<inc>.log`,
//! each record one `write(2)` (see `support::Journal`). Times are
//! [`shmq::now_ms`], the queue's own clock.
//!
//! | record                                  | meaning                                   |
//! |-----------------------------------------|-------------------------------------------|
//! | `I pid t`                               | this incarnation started                  |
//! | `S id key t`                            | send returned `Ok(id)` (producer)         |
//! | `E key error`                           | send failed (not sent)                    |
//! | `R id slot gen receives t deadline key` | received; `key` is `CORRUPT` if the payload failed its checksum |
//! | `a id slot gen t`                       | about to ack (the outcome follows unless killed) |
//! | `A id slot gen t`                       | ack returned `Ok`                         |
//! | `F id slot gen op error`                | ack, nack or extend failed                |
//! | `N id slot gen t`                       | nack returned `Ok`                        |
//! | `P id slot gen refused`                 | a stale receipt's ack was refused, as it must be |
//! | `Z id slot gen what`                    | a stale receipt's ack was accepted (a violation) |

mod support;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::Duration;

use shmq::{now_ms, recover, Config, Queue};
use support::*;

/// The queue's visibility timeout: 200 ms, or `SHMQ_TORTURE_VT_MS` (the
/// long form runs with 30 s as well, where a killed consumer's leases must
/// come back because its process is gone, not because they expired).
fn vt_ms() -> u64 {
    env_u64("SHMQ_TORTURE_VT_MS", 200)
}
const CLAIM_MS: u64 = 200;
const SLOTS: u32 = 64;
const SLOT_SIZE: u32 = 128;
const PRODUCERS: u64 = 4;
const CONSUMERS: u64 = 4;

fn config() -> Config {
    Config::default()
        .slots(SLOTS)
        .slot_size(SLOT_SIZE)
        .visibility_timeout(Duration::from_millis(vt_ms()))
        .claim_timeout(Duration::from_millis(CLAIM_MS))
        // High enough that nothing is dead-lettered: every message must be acked.
        .max_receives(1000)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

// ------------------------------------------------------------------ children

#[test]
fn child() {
    let Some(role) = role() else { return };
    match role.as_str() {
        "producer" => producer(),
        "consumer" => consumer(),
        other => panic!("unknown role {other}"),
    }
}

struct Me {
    dir: PathBuf,
    idx: u64,
    inc: u64,
    rng: Rng,
}

fn me() -> Me {
    Me {
        dir: PathBuf::from(env_str("T_DIR")),
        idx: env_u64("T_IDX", 0),
        inc: env_u64("T_INC", 0),
        rng: Rng::new(env_u64("T_SEED", 1)),
    }
}

fn producer() -> ! {
    let mut me = me();
    let q = Queue::open(me.dir.join("q")).expect("open the queue");
    let mut j = Journal::create(&journal_path(&me.dir, 'p', me.idx, me.inc));
    j.log(format_args!("I {} {}", std::process::id(), now_ms()));
    let mut seq = 0u64;
    loop {
        let key = format!("{}.{}.{seq}", me.idx, me.inc);
        let msg = make_payload(&key);
        match q.send(&msg[..]) {
            Ok(id) => {
                j.log(format_args!("S {id} {key} {}", now_ms()));
                seq += 1;
            }
            // Back off while the consumers catch up (pacing, not synchronisation).
            Err(e) if e.is_full() => std::thread::sleep(ms(1)),
            Err(e) => {
                j.log(format_args!("E {key} {e:?}"));
                seq += 1;
            }
        }
        if me.rng.chance(100) {
            std::thread::sleep(ms(me.rng.range(0, 2)));
        }
    }
}

fn consumer() -> ! {
    let mut me = me();
    let q = Queue::open(me.dir.join("q")).expect("open the queue");
    let mut j = Journal::create(&journal_path(&me.dir, 'c', me.idx, me.inc));
    j.log(format_args!("I {} {}", std::process::id(), now_ms()));
    let mut buf = Vec::new();
    loop {
        let Some(d) = q.receive_into(&mut buf, ms(50), None) else {
            continue;
        };
        let key = check_payload(&buf).unwrap_or_else(|| "CORRUPT".to_owned());
        let (id, rc) = (d.id, d.receipt);
        let (slot, gen) = (rc.slot, rc.gen);
        j.log(format_args!(
            "R {id} {slot} {gen} {} {} {} {key}",
            d.receives,
            now_ms(),
            d.deadline_ms
        ));
        // Work: usually 0-2 ms; 2% of the time longer than the lease, so that
        // the lease expires under us and our late ack must be refused if
        // someone else took the message over.
        if me.rng.chance(20) {
            std::thread::sleep(ms(vt_ms().min(1000) + 50));
        } else {
            std::thread::sleep(ms(me.rng.range(0, 2)));
        }
        let act = me.rng.below(100);
        if act < 5 {
            match q.nack(rc, Duration::ZERO) {
                Ok(_) => j.log(format_args!("N {id} {slot} {gen} {}", now_ms())),
                Err(e) => j.log(format_args!("F {id} {slot} {gen} nack {e:?}")),
            }
            // The receipt of a released lease must be refused.
            if q.ack(rc).is_ok() {
                j.log(format_args!("Z {id} {slot} {gen} ack-after-nack"));
            } else {
                j.log(format_args!("P {id} {slot} {gen} refused"));
            }
            continue;
        }
        if act < 10 {
            if let Err(e) = q.extend(rc, ms(vt_ms())) {
                j.log(format_args!("F {id} {slot} {gen} extend {e:?}"));
            }
        }
        j.log(format_args!("a {id} {slot} {gen} {}", now_ms()));
        match q.ack(rc) {
            Ok(()) => {
                j.log(format_args!("A {id} {slot} {gen} {}", now_ms()));
                // The receipt of an acked lease must be refused.
                if me.rng.chance(100) {
                    if q.ack(rc).is_ok() {
                        j.log(format_args!("Z {id} {slot} {gen} ack-after-ack"));
                    } else {
                        j.log(format_args!("P {id} {slot} {gen} refused"));
                    }
                }
            }
            Err(e) => j.log(format_args!("F {id} {slot} {gen} ack {e:?}")),
        }
    }
}

fn journal_path(dir: &Path, role: char, idx: u64, inc: u64) -> PathBuf {
    dir.join(format!("{role}{idx}.{inc:06}.log"))
}

// ---------------------------------------------------------------- supervisor

struct Kid {
    role: char,
    idx: u64,
    inc: u64,
    child: Child,
    log: PathBuf,
}

/// One scheduled SIGKILL.
#[derive(Clone, Debug)]
struct Kill {
    role: char,
    idx: u64,
    inc: u64,
    at: u64,
}

fn start(dir: &Path, role: char, idx: u64, inc: u64, seed: u64) -> Kid {
    let log = dir.join(format!("{role}{idx}.{inc:06}.out"));
    let name = if role == 'p' { "producer" } else { "consumer" };
    let child = spawn(
        name,
        &[
            ("T_DIR", dir.display().to_string()),
            ("T_IDX", idx.to_string()),
            ("T_INC", inc.to_string()),
            ("T_SEED", seed.to_string()),
        ],
        &log,
    );
    Kid {
        role,
        idx,
        inc,
        child,
        log,
    }
}

fn kill_or_explain(kid: &mut Kid) {
    if let Err(st) = kill9(&mut kid.child) {
        panic!(
            "{}{} (incarnation {}) exited on its own with {st}:\n{}",
            kid.role,
            kid.idx,
            kid.inc,
            tail(&kid.log, 4000)
        );
    }
}

/// Run the soak with `kills` scheduled kills; returns the checker's report.
fn soak(kills: u64, label: &str) -> Report {
    let seed = seed(label);
    let mut rng = Rng::new(seed);
    let tmp = tempfile::Builder::new()
        .prefix("shmq-torture-")
        .tempdir()
        .unwrap();
    let dir = tmp.path().to_path_buf();
    let path = dir.join("q");
    Queue::create(&path, &config()).unwrap();
    let started = std::time::Instant::now();

    let mut kids: Vec<Kid> = Vec::new();
    for (role, n) in [('p', PRODUCERS), ('c', CONSUMERS)] {
        for i in 0..n {
            kids.push(start(&dir, role, i, 0, rng.next_u64()));
        }
    }
    let mut log = Vec::new();
    while (log.len() as u64) < kills {
        // The kill schedule: a random pause, a random victim.
        std::thread::sleep(ms(rng.range(5, 50)));
        let v = rng.below(kids.len() as u64) as usize;
        let at = now_ms();
        kill_or_explain(&mut kids[v]);
        let k = &kids[v];
        log.push(Kill {
            role: k.role,
            idx: k.idx,
            inc: k.inc,
            at,
        });
        let (role, idx, inc) = (k.role, k.idx, k.inc + 1);
        kids[v] = start(&dir, role, idx, inc, rng.next_u64());
    }
    let kill_phase = started.elapsed();

    // Settle: stop the producers, let the consumers (no longer killed) finish
    // the backlog and the redeliveries, then stop them too.
    for k in kids.iter_mut().filter(|k| k.role == 'p') {
        kill_or_explain(k);
    }
    let q = Queue::open(&path).unwrap();
    let settled = wait_until(ms(15_000), ms(20), || {
        let s = q.stats();
        s.free == s.capacity
    });
    for k in kids.iter_mut().filter(|k| k.role == 'c') {
        kill_or_explain(k);
    }

    // The clean drain: recover (the holders are all dead now), then receive
    // until every slot is free, or give up after a deadline.
    let mut dj = Journal::create(&dir.join("drain.log"));
    let mut buf = Vec::new();
    let drained = wait_until(ms(10_000), ms(1), || {
        recover::apply(&q, now_ms(), false);
        while let Some(d) = q.try_receive_into(&mut buf, None) {
            let key = check_payload(&buf).unwrap_or_else(|| "CORRUPT".to_owned());
            let (id, slot, gen) = (d.id, d.receipt.slot, d.receipt.gen);
            dj.log(format_args!(
                "R {id} {slot} {gen} {} {} {} {key}",
                d.receives,
                now_ms(),
                d.deadline_ms
            ));
            match q.ack(d.receipt) {
                Ok(()) => dj.log(format_args!("A {id} {slot} {gen} {}", now_ms())),
                Err(e) => dj.log(format_args!("F {id} {slot} {gen} ack {e:?}")),
            }
        }
        let s = q.stats();
        s.free == s.capacity
    });
    let stats = q.stats();
    let scan = recover::scan(&q, now_ms(), false);
    let not_free = u64::from(scan.slots) - scan.count(recover::Class::Free);

    let mut rep = check(&dir, &log);
    rep.seed = seed;
    rep.kill_phase_s = kill_phase.as_secs_f64();
    rep.total_s = started.elapsed().as_secs_f64();
    rep.settled = settled;
    rep.drained = drained;
    rep.stuck = (stats.capacity - stats.free).max(not_free);
    rep.dead_letters = q.dead_letters().len() as u64;
    rep.counters = format!(
        "sent {}, acked {}, redelivered {}, dead-lettered {}",
        stats.sent, stats.acked, stats.redelivered, stats.dead_lettered
    );
    if !rep.ok() {
        let kept = tmp.keep();
        rep.kept = Some(kept);
    }
    rep
}

// ------------------------------------------------------------------- checker

#[derive(Debug, Default)]
struct Report {
    seed: u64,
    kill_phase_s: f64,
    total_s: f64,
    kills: u64,
    producer_kills: u64,
    consumer_kills: u64,
    sends_ok: u64,
    send_errors: u64,
    deliveries: u64,
    distinct_delivered: u64,
    duplicates: u64,
    acks_ok: u64,
    nacks_ok: u64,
    lease_lost: u64,
    /// Messages whose only evidence of an ack is an `a` record its consumer
    /// was killed right after (the ack may have landed, the `A` did not).
    acked_unconfirmed: u64,
    lost: Vec<u64>,
    corrupt: Vec<String>,
    nonholder: Vec<String>,
    stale_probes: u64,
    stale_probes_accepted: u64,
    stuck: u64,
    dead_letters: u64,
    settled: bool,
    drained: bool,
    held_at_kill: u64,
    redelivered_in_drain: u64,
    not_redelivered: u64,
    death_to_redelivery: Vec<u64>,
    expiry_to_redelivery: Vec<u64>,
    counters: String,
    kept: Option<PathBuf>,
}

impl Report {
    fn ok(&self) -> bool {
        self.lost.is_empty()
            && self.corrupt.is_empty()
            && self.nonholder.is_empty()
            && self.stuck == 0
            && self.dead_letters == 0
    }

    fn print(&self) -> String {
        let mut d2r = self.death_to_redelivery.clone();
        let mut e2r = self.expiry_to_redelivery.clone();
        let mut s = String::new();
        let mut line = |k: &str, v: String| s.push_str(&format!("{k:<40} {v}\n"));
        line("seed", self.seed.to_string());
        line("visibility timeout", format!("{} ms", vt_ms()));
        line(
            "wall time",
            format!(
                "{:.1} s (kill phase {:.1} s)",
                self.total_s, self.kill_phase_s
            ),
        );
        line(
            "kills (SIGKILL)",
            format!(
                "{} ({} producers, {} consumers)",
                self.kills, self.producer_kills, self.consumer_kills
            ),
        );
        line("sends returned Ok (journaled)", self.sends_ok.to_string());
        line("send errors (not sent)", self.send_errors.to_string());
        line("LOST", self.lost.len().to_string());
        line("CORRUPT payloads delivered", self.corrupt.len().to_string());
        line(
            "ACKS ACCEPTED FROM A NON-HOLDER",
            self.nonholder.len().to_string(),
        );
        line(
            "  stale-receipt acks tried / accepted",
            format!("{} / {}", self.stale_probes, self.stale_probes_accepted),
        );
        line("SLOTS STUCK after the drain", self.stuck.to_string());
        line(
            "dead letters after the drain",
            self.dead_letters.to_string(),
        );
        line("deliveries", self.deliveries.to_string());
        line(
            "duplicates delivered",
            format!(
                "{} ({} distinct messages delivered)",
                self.duplicates, self.distinct_delivered
            ),
        );
        line(
            "acks Ok / nacks Ok",
            format!("{} / {}", self.acks_ok, self.nacks_ok),
        );
        line("acks refused (lease lost)", self.lease_lost.to_string());
        line(
            "acked, unconfirmed (killed after ack)",
            self.acked_unconfirmed.to_string(),
        );
        line(
            "messages held by killed consumers",
            format!(
                "{} ({} redelivered only by the drain, {} not redelivered: acked before death)",
                self.held_at_kill, self.redelivered_in_drain, self.not_redelivered
            ),
        );
        line("consumer death -> redelivery", summary(&mut d2r));
        line("lease deadline -> redelivery", summary(&mut e2r));
        line("queue counters", self.counters.clone());
        line(
            "settled / drained before deadline",
            format!("{} / {}", self.settled, self.drained),
        );
        if let Some(k) = &self.kept {
            line("journals kept in", k.display().to_string());
        }
        for (what, v) in [
            (
                "lost ids",
                format!("{:?}", &self.lost[..self.lost.len().min(20)]),
            ),
            (
                "corrupt",
                format!("{:?}", &self.corrupt[..self.corrupt.len().min(20)]),
            ),
            (
                "non-holder",
                format!("{:?}", &self.nonholder[..self.nonholder.len().min(20)]),
            ),
        ] {
            if v != "[]" {
                line(what, v);
            }
        }
        s
    }
}

/// One delivery: where it was journaled and what it said.
#[derive(Clone, Debug)]
struct Delivery {
    id: u64,
    gen: u64,
    at: u64,
    key: String,
    by_drain: bool,
}

fn num(r: &[String], i: usize) -> Option<u64> {
    r.get(i)?.parse().ok()
}

/// Read every journal in `dir` and check the invariants. `kills` is the
/// supervisor's kill log.
fn check(dir: &Path, kills: &[Kill]) -> Report {
    let mut rep = Report {
        kills: kills.len() as u64,
        producer_kills: kills.iter().filter(|k| k.role == 'p').count() as u64,
        consumer_kills: kills.iter().filter(|k| k.role == 'c').count() as u64,
        ..Report::default()
    };

    // Sends.
    let mut sent: HashMap<u64, String> = HashMap::new();
    for f in files(dir, "p") {
        for r in read_journal(&f) {
            match r[0].as_str() {
                "S" => {
                    let (Some(id), Some(key)) = (num(&r, 1), r.get(2)) else {
                        continue;
                    };
                    rep.sends_ok += 1;
                    if let Some(old) = sent.insert(id, key.clone()) {
                        rep.corrupt
                            .push(format!("id {id} returned by two sends ({old}, {key})"));
                    }
                }
                "E" => rep.send_errors += 1,
                _ => {}
            }
        }
    }

    // Deliveries and acks, per journal.
    let mut deliveries: Vec<Delivery> = Vec::new();
    let mut acks: Vec<(u64, u32, u64)> = Vec::new();
    let mut unconfirmed: HashSet<u64> = HashSet::new();
    let mut journals: Vec<(PathBuf, Vec<Vec<String>>)> = files(dir, "c")
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .map(|p| {
            let r = read_journal(&p);
            (p, r)
        })
        .collect();
    journals.push((dir.join("drain.log"), read_journal(&dir.join("drain.log"))));
    for (path, recs) in &journals {
        let by_drain = path.ends_with("drain.log");
        let mut open_intent: Option<(u64, u32, u64)> = None;
        for r in recs {
            let (Some(id), Some(slot), Some(gen)) = (num(r, 1), num(r, 2), num(r, 3)) else {
                continue;
            };
            let slot = slot as u32;
            match r[0].as_str() {
                "R" => deliveries.push(Delivery {
                    id,
                    gen,
                    at: num(r, 5).unwrap_or(0),
                    key: r.get(7).cloned().unwrap_or_default(),
                    by_drain,
                }),
                "a" => open_intent = Some((id, slot, gen)),
                "A" => {
                    acks.push((id, slot, gen));
                    open_intent = None;
                }
                "F" => {
                    if r.get(5).is_some_and(|e| e == "LeaseLost") {
                        rep.lease_lost += 1;
                    }
                    if r.get(4).is_some_and(|op| op == "ack") {
                        open_intent = None;
                    }
                }
                "N" => rep.nacks_ok += 1,
                "P" => rep.stale_probes += 1,
                "Z" => {
                    rep.stale_probes += 1;
                    rep.stale_probes_accepted += 1;
                    rep.nonholder.push(format!(
                        "stale receipt {slot}:{gen} of id {id} acked ({})",
                        r[4]
                    ));
                }
                _ => {}
            }
        }
        // Killed between the ack call and its outcome record.
        if let Some((id, _, _)) = open_intent {
            unconfirmed.insert(id);
        }
    }
    rep.acks_ok = acks.len() as u64;
    rep.deliveries = deliveries.len() as u64;

    // Corrupt: a payload that failed its checksum, or one that is not what
    // its sender sent under that id, or one key under two ids.
    let mut key_ids: HashMap<&str, u64> = HashMap::new();
    for d in &deliveries {
        if d.key == "CORRUPT" {
            rep.corrupt
                .push(format!("id {} gen {}: bad checksum", d.id, d.gen));
            continue;
        }
        if let Some(k) = sent.get(&d.id) {
            if *k != d.key {
                rep.corrupt
                    .push(format!("id {} delivered {} but sent {k}", d.id, d.key));
            }
        }
        if let Some(other) = key_ids.insert(&d.key, d.id) {
            if other != d.id {
                rep.corrupt.push(format!(
                    "key {} delivered as ids {other} and {}",
                    d.key, d.id
                ));
            }
        }
    }

    // Acks from a non-holder: a second accepted ack of one message or one
    // receipt, or a delivery of a message after an accepted ack of it.
    let mut acked_gen: HashMap<u64, u64> = HashMap::new();
    let mut receipts: HashSet<(u32, u64)> = HashSet::new();
    for &(id, slot, gen) in &acks {
        if let Some(g) = acked_gen.insert(id, gen) {
            rep.nonholder
                .push(format!("id {id} acked twice (gens {g} and {gen})"));
        }
        if !receipts.insert((slot, gen)) {
            rep.nonholder
                .push(format!("receipt {slot}:{gen} acked twice"));
        }
    }
    for d in &deliveries {
        if let Some(&g) = acked_gen.get(&d.id) {
            if d.gen > g {
                rep.nonholder.push(format!(
                    "id {} delivered at gen {} after its ack at gen {g} was accepted",
                    d.id, d.gen
                ));
            }
        }
    }

    // Lost: sent, never acked.
    let mut lost: Vec<u64> = Vec::new();
    for id in sent.keys() {
        if acked_gen.contains_key(id) {
            continue;
        }
        if unconfirmed.contains(id) {
            rep.acked_unconfirmed += 1;
        } else {
            lost.push(*id);
        }
    }
    lost.sort_unstable();
    rep.lost = lost;

    // Duplicates.
    let distinct: HashSet<u64> = deliveries.iter().map(|d| d.id).collect();
    rep.distinct_delivered = distinct.len() as u64;
    rep.duplicates = rep.deliveries - rep.distinct_delivered;

    // Death -> redelivery: for each consumer kill, the messages that
    // incarnation held (received, no ack/nack outcome), and when each was
    // next delivered.
    let mut by_id: BTreeMap<u64, Vec<&Delivery>> = BTreeMap::new();
    for d in &deliveries {
        by_id.entry(d.id).or_default().push(d);
    }
    for k in kills.iter().filter(|k| k.role == 'c') {
        let recs = read_journal(&journal_path(dir, 'c', k.idx, k.inc));
        let mut held: BTreeMap<(u32, u64), (u64, u64)> = BTreeMap::new();
        for r in &recs {
            let (Some(id), Some(slot), Some(gen)) = (num(r, 1), num(r, 2), num(r, 3)) else {
                continue;
            };
            let key = (slot as u32, gen);
            match r[0].as_str() {
                "R" => {
                    held.insert(key, (id, num(r, 6).unwrap_or(0)));
                }
                "A" | "N" => {
                    held.remove(&key);
                }
                "F" if r.get(4).is_some_and(|op| op != "extend") => {
                    held.remove(&key);
                }
                _ => {}
            }
        }
        for (&(_, gen), &(id, deadline)) in &held {
            rep.held_at_kill += 1;
            let next = by_id
                .get(&id)
                .and_then(|v| v.iter().filter(|d| d.gen > gen).min_by_key(|d| d.gen));
            match next {
                Some(d) if d.by_drain => rep.redelivered_in_drain += 1,
                Some(d) => {
                    rep.death_to_redelivery.push(d.at.saturating_sub(k.at));
                    rep.expiry_to_redelivery
                        .push(d.at.saturating_sub(deadline.max(k.at)));
                }
                None => rep.not_redelivered += 1,
            }
        }
    }
    rep
}

fn run_and_assert(kills: u64, label: &str) {
    let rep = soak(kills, label);
    let text = rep.print();
    eprintln!("\n== {label}\n{text}");
    if let Ok(out) = std::env::var("SHMQ_TORTURE_REPORT") {
        std::fs::write(out, &text).unwrap();
    }
    assert!(rep.kills >= kills, "{text}");
    assert!(
        rep.sends_ok > 0 && rep.deliveries > 0,
        "no traffic:\n{text}"
    );
    assert!(
        rep.held_at_kill > 0,
        "no consumer was killed holding a lease:\n{text}"
    );
    assert!(rep.lost.is_empty(), "messages lost:\n{text}");
    assert!(
        rep.corrupt.is_empty(),
        "corrupt payloads delivered:\n{text}"
    );
    assert!(
        rep.nonholder.is_empty(),
        "acks accepted from a non-holder:\n{text}"
    );
    assert_eq!(rep.stuck, 0, "slots stuck after the drain:\n{text}");
    assert_eq!(rep.dead_letters, 0, "dead letters after the drain:\n{text}");
}

/// The short form, part of `cargo test`: 200 kills.
#[test]
fn soak_short() {
    run_and_assert(200, "kill -9 soak, short form");
}

/// The long form: `SHMQ_TORTURE_KILLS` kills (default 10 000).
/// `scripts/torture-long.sh` runs it in release mode.
#[test]
#[ignore = "long form: scripts/torture-long.sh"]
fn soak_long() {
    run_and_assert(
        env_u64("SHMQ_TORTURE_KILLS", 10_000),
        "kill -9 soak, long form",
    );
}

/// The checker must be able to fail: made-up journals with one lost
/// message, one corrupt payload and one double ack.
#[test]
fn the_checker_sees_loss_corruption_and_double_acks() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let w = |name: &str, text: &str| std::fs::write(d.join(name), text).unwrap();
    let (k1, k2, k3, k4) = ("0.0.0", "0.0.1", "0.0.2", "0.0.3");
    w(
        "p0.000000.log",
        &format!("I 1 0\nS 1 {k1} 1\nS 2 {k2} 1\nS 3 {k3} 1\nS 4 {k4} 1\nS 5 0.0.4"),
    );
    w(
        "c0.000000.log",
        &format!(
            "I 2 0\nR 1 0 2 1 5 205 {k1}\na 1 0 2 6\nA 1 0 2 6\n\
             R 2 1 2 1 7 207 CORRUPT\nA 2 1 2 8\n\
             R 4 3 2 1 9 209 {k4}\nA 4 3 2 10\nR 4 3 4 2 11 211 {k4}\n\
             R 3 2 2 1 12 212 {k3}\n"
        ),
    );
    w("c1.000000.log", "I 3 0\nA 1 0 4 20\n");
    w("drain.log", "");
    let kills = [Kill {
        role: 'c',
        idx: 0,
        inc: 0,
        at: 13,
    }];
    let rep = check(d, &kills);
    // id 3 was received and never acked; id 5's record is torn (not counted).
    assert_eq!(rep.sends_ok, 4);
    assert_eq!(rep.lost, vec![3], "{}", rep.print());
    assert_eq!(rep.corrupt.len(), 1, "{}", rep.print());
    // id 1 acked twice; id 4 delivered again after its accepted ack.
    assert_eq!(rep.nonholder.len(), 2, "{}", rep.print());
    assert_eq!(
        rep.held_at_kill, 2,
        "ids 3 and 4 (gen 4) were held at the kill"
    );
    assert_eq!(rep.not_redelivered, 2);
    assert_eq!(rep.duplicates, 1);
    assert!(!rep.ok());
}
