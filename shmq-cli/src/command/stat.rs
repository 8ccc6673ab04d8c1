//! `shmq stat`: counts by state, the counters and the configuration of one
//! or more queues, once or (--watch) as a live table with rates.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{json, Map, Value};
use shmq::{QueueView, Stats};

use crate::duration::{self, human_ms, rfc3339, unix_ms};
use crate::exit::Failure;
use crate::output::{self, Out};

pub const AFTER_HELP: &str = "\
--json keys, in this order: path, capacity, slot_size, visible,
expired_leases, delayed, in_flight, dead, free, writing, abandoned, other,
sent, acked, redelivered, dead_lettered, redriven, oldest_visible_age_ms,
oldest_unfinished_age_ms, visibility_timeout_ms, max_receives,
claim_timeout_ms, checksums, mode, identity, clocks_current,
dead_letter_queue (its path, or null), durable, syncs, durable_waits,
sync_failed (the errno of a failed sync the queue recorded, or null).

A durable queue whose sync failed shows `SYNC FAILED`: its durable sends
fail until `shmq recover --apply` rewrites and syncs the file.

Each slot is judged now, as a receive would judge it: a lease past its
deadline counts as visible (expired_leases of them; dead at max receives),
a claim past its timeout as abandoned, even with no consumer running.

--watch on a terminal redraws a table in place: per queue DEPTH (visible),
DELAYED, IN-FLIGHT, DEAD, OLDEST (age of the oldest visible message) and
the rates SENT/s, ACKED/s, REDELIV/s over the last interval. Piped, it
prints one line per queue per refresh: text that starts with an RFC 3339
time, or with --json an object with keys time_unix_ms, path, visible,
delayed, in_flight, dead, oldest_visible_age_ms, sent, acked, redelivered,
sent_per_s, acked_per_s, redelivered_per_s (rates null on the first line).

stat reads the file only: read access is enough. After a reboot, until a
process opens the queue for writing, ages and visibility are stale
(clocks_current is false).";

#[derive(clap::Args)]
pub struct Args {
    /// The queue files.
    #[arg(required = true)]
    pub paths: Vec<PathBuf>,
    /// One JSON object per queue and line.
    #[arg(long)]
    pub json: bool,
    /// Refresh until interrupted: a live table on a terminal, one line per
    /// queue per refresh when piped.
    #[arg(long)]
    pub watch: bool,
    /// Time between refreshes with --watch: 10ms ..= 1h.
    #[arg(long, default_value = "1s", value_parser = duration::interval, requires = "watch", value_name = "DURATION")]
    pub interval: Duration,
    /// Stop after this many refreshes with --watch (0: never).
    #[arg(long, default_value_t = 0, requires = "watch")]
    pub count: u64,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let views = a
        .paths
        .iter()
        .map(|p| output::view(p))
        .collect::<Result<Vec<_>, _>>()?;
    if a.watch {
        return watch(&a, &views);
    }
    let mut out = Out::new();
    if a.json {
        for v in &views {
            out.json(&to_json(v, &v.stats()))?;
        }
    } else if views.len() == 1 {
        out.write_all(text(&views[0], &views[0].stats()).as_bytes())?;
    } else {
        writeln!(out, "{}", table_header(false))?;
        for v in &views {
            writeln!(out, "{}", table_row(v, &v.stats(), None))?;
        }
    }
    out.finish()
}

fn text(q: &QueueView, st: &Stats) -> String {
    let c = q.config();
    let oldest = st
        .oldest_visible_age
        .map(|d| format!("   (oldest {})", human_ms(duration::millis(d))))
        .unwrap_or_default();
    let expired = if st.expired_leases > 0 {
        format!("   ({} of them expired leases)", st.expired_leases)
    } else {
        String::new()
    };
    let unfinished = st
        .oldest_unfinished_age
        .map(|d| format!("   (oldest unfinished {})", human_ms(duration::millis(d))))
        .unwrap_or_default();
    let stale = if q.clocks_current() {
        ""
    } else {
        "clocks        stale (the host rebooted; a writer's open resets them)\n"
    };
    let durable = match (c.durable, st.sync_failed) {
        (_, Some(errno)) => format!(
            "durability    SYNC FAILED ({}): durable sends fail; check the disk, then run `shmq recover --apply {}`\n",
            std::io::Error::from_raw_os_error(errno),
            q.path().display()
        ),
        (true, None) => format!(
            "durability    durable: sends return once on disk; {} syncs for {} durable waits\n",
            st.syncs, st.durable_waits
        ),
        (false, None) if st.syncs > 0 => format!(
            "durability    not durable; {} syncs on request\n",
            st.syncs
        ),
        (false, None) => String::new(),
    };
    let dlq = q
        .dead_letter_queue_path()
        .map(|p| format!("dead letters  moved to {}\n", p.display()))
        .unwrap_or_default();
    format!(
        "queue         {}\n\
         capacity      {} slots of {} bytes\n\
         visible       {}{oldest}{expired}\n\
         delayed       {}\n\
         in flight     {}{unfinished}\n\
         dead          {}\n\
         free          {}\n\
         writing       {}\n\
         abandoned     {}\n\
         other         {}\n\
         counters      sent {}, acked {}, redelivered {}, dead-lettered {}, redriven {}\n\
         config        visibility {}, max receives {}, claim timeout {}, checksums {}, mode {:04o}\n\
         {durable}{dlq}{stale}",
        q.path().display(),
        st.capacity,
        c.slot_size,
        st.visible,
        st.delayed,
        st.in_flight,
        st.dead,
        st.free,
        st.writing,
        st.abandoned,
        st.other,
        st.sent,
        st.acked,
        st.redelivered,
        st.dead_lettered,
        st.redriven,
        duration::human(c.visibility_timeout),
        c.max_receives,
        duration::human(c.claim_timeout),
        if c.checksums { "on" } else { "off" },
        c.mode,
    )
}

fn to_json(q: &QueueView, st: &Stats) -> Value {
    let c = q.config();
    json!({
        "path": q.path().display().to_string(),
        "capacity": st.capacity,
        "slot_size": c.slot_size,
        "visible": st.visible,
        "expired_leases": st.expired_leases,
        "delayed": st.delayed,
        "in_flight": st.in_flight,
        "dead": st.dead,
        "free": st.free,
        "writing": st.writing,
        "abandoned": st.abandoned,
        "other": st.other,
        "sent": st.sent,
        "acked": st.acked,
        "redelivered": st.redelivered,
        "dead_lettered": st.dead_lettered,
        "redriven": st.redriven,
        "oldest_visible_age_ms": st.oldest_visible_age.map(duration::millis),
        "oldest_unfinished_age_ms": st.oldest_unfinished_age.map(duration::millis),
        "visibility_timeout_ms": duration::millis(c.visibility_timeout),
        "max_receives": c.max_receives,
        "claim_timeout_ms": duration::millis(c.claim_timeout),
        "checksums": c.checksums,
        "mode": format!("{:04o}", c.mode),
        "identity": format!("{:016x}", q.identity()),
        "clocks_current": q.clocks_current(),
        "dead_letter_queue": q.dead_letter_queue_path().map(|p| p.display().to_string()),
        "durable": c.durable,
        "syncs": st.syncs,
        "durable_waits": st.durable_waits,
        "sync_failed": st.sync_failed,
    })
}

/// Per-second rates of the counters since the previous refresh.
#[derive(Clone, Copy)]
struct Rates {
    sent: f64,
    acked: f64,
    redelivered: f64,
}

fn rates(prev: &Stats, now: &Stats, secs: f64) -> Rates {
    let r = |a: u64, b: u64| b.saturating_sub(a) as f64 / secs.max(1e-3);
    Rates {
        sent: r(prev.sent, now.sent),
        acked: r(prev.acked, now.acked),
        redelivered: r(prev.redelivered, now.redelivered),
    }
}

fn table_header(with_rates: bool) -> String {
    let mut h = format!(
        "{:<24} {:>8} {:>8} {:>9} {:>6} {:>8}",
        "QUEUE", "DEPTH", "DELAYED", "IN-FLIGHT", "DEAD", "OLDEST"
    );
    if with_rates {
        h += &format!(" {:>9} {:>9} {:>9}", "SENT/s", "ACKED/s", "REDELIV/s");
    }
    h
}

fn table_row(q: &QueueView, st: &Stats, r: Option<Option<Rates>>) -> String {
    let oldest = st
        .oldest_visible_age
        .map(|d| human_ms(duration::millis(d)))
        .unwrap_or_else(|| "-".into());
    let mut row = format!(
        "{:<24} {:>8} {:>8} {:>9} {:>6} {:>8}",
        q.path().display(),
        st.visible,
        st.delayed,
        st.in_flight,
        st.dead,
        oldest
    );
    match r {
        None => {}
        Some(None) => row += &format!(" {:>9} {:>9} {:>9}", "-", "-", "-"),
        Some(Some(r)) => {
            row += &format!(" {:>9.1} {:>9.1} {:>9.1}", r.sent, r.acked, r.redelivered)
        }
    }
    row
}

fn watch_json(q: &QueueView, st: &Stats, r: Option<Rates>, t: u64) -> Value {
    let mut m: Map<String, Value> = output::object(json!({
        "time_unix_ms": t,
        "path": q.path().display().to_string(),
        "visible": st.visible,
        "delayed": st.delayed,
        "in_flight": st.in_flight,
        "dead": st.dead,
        "oldest_visible_age_ms": st.oldest_visible_age.map(duration::millis),
        "sent": st.sent,
        "acked": st.acked,
        "redelivered": st.redelivered,
    }));
    let round = |x: f64| (x * 10.0).round() / 10.0;
    m.insert("sent_per_s".into(), json!(r.map(|r| round(r.sent))));
    m.insert("acked_per_s".into(), json!(r.map(|r| round(r.acked))));
    m.insert(
        "redelivered_per_s".into(),
        json!(r.map(|r| round(r.redelivered))),
    );
    Value::Object(m)
}

fn watch(a: &Args, views: &[QueueView]) -> Result<(), Failure> {
    let tty = !a.json && io::stdout().is_terminal();
    let mut prev: Option<(Instant, Vec<Stats>)> = None;
    let mut shown_lines = 0;
    let mut n = 0u64;
    loop {
        let at = Instant::now();
        let t = unix_ms(SystemTime::now());
        let now: Vec<Stats> = views.iter().map(QueueView::stats).collect();
        let rate_of = |i: usize| {
            prev.as_ref()
                .map(|(then, p)| rates(&p[i], &now[i], at.duration_since(*then).as_secs_f64()))
        };
        let mut out = Out::new();
        if a.json {
            for (i, v) in views.iter().enumerate() {
                out.json(&watch_json(v, &now[i], rate_of(i), t))?;
            }
        } else if tty {
            let mut body = format!("{}  every {}\n", rfc3339(t), duration::human(a.interval));
            body += &table_header(true);
            body.push('\n');
            for (i, v) in views.iter().enumerate() {
                body += &table_row(v, &now[i], Some(rate_of(i)));
                body.push('\n');
            }
            if shown_lines > 0 {
                // Cursor up over the last table, then clear to the end.
                write!(out, "\x1b[{shown_lines}A\x1b[J")?;
            }
            out.write_all(body.as_bytes())?;
            shown_lines = body.lines().count();
        } else {
            for (i, v) in views.iter().enumerate() {
                let st = &now[i];
                let fmt = |x: Option<f64>| x.map_or("-".into(), |x| format!("{x:.1}"));
                let r = rate_of(i);
                writeln!(
                    out,
                    "{} {} depth={} delayed={} in_flight={} dead={} oldest={} sent/s={} acked/s={} redelivered/s={}",
                    rfc3339(t),
                    v.path().display(),
                    st.visible,
                    st.delayed,
                    st.in_flight,
                    st.dead,
                    st.oldest_visible_age
                        .map(|d| human_ms(duration::millis(d)))
                        .unwrap_or_else(|| "-".into()),
                    fmt(r.map(|r| r.sent)),
                    fmt(r.map(|r| r.acked)),
                    fmt(r.map(|r| r.redelivered)),
                )?;
            }
        }
        out.finish()?;
        prev = Some((at, now));
        n += 1;
        if a.count != 0 && n >= a.count {
            return Ok(());
        }
        std::thread::sleep(a.interval.saturating_sub(at.elapsed()));
    }
}
