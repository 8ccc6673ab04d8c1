//! `shmq inspect`: slot by slot, with state, message id, receive count,
//! deadline and lease holder.

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{json, Value};
use shmq::internal::{SlotInfo, St};
use shmq::recover::{classify, Class};
use shmq::{now_ms, DeadReason};

use crate::duration::{mono_to_unix_ms, relative};
use crate::exit::Failure;
use crate::output::{self, Out};

#[derive(clap::Args)]
pub struct Args {
    /// The queue file (read access is enough).
    pub path: PathBuf,
    /// Only slots in this state: free, writing, ready, leased, dead,
    /// abandoned, or a recover class (visible, delayed, leased-live,
    /// leased-dead, lease-expired, claim-expired, corrupt).
    #[arg(long, value_parser = parse_filter)]
    pub state: Option<String>,
    /// Include free slots (without --state, they are left out).
    #[arg(long)]
    pub all: bool,
    /// Show at most this many slots.
    #[arg(long, default_value_t = 1000)]
    pub limit: usize,
    /// One JSON object per slot and line; keys in this order: slot, state,
    /// class, gen, id, receives, len, time_unix_ms, time_from_now_ms,
    /// sent_unix_ms, holder, holder_pid, holder_alive, reason.
    #[arg(long)]
    pub json: bool,
}

fn parse_filter(s: &str) -> Result<String, String> {
    if St::ALL.iter().any(|st| st.name() == s) || Class::from_name(s).is_some() {
        Ok(s.to_owned())
    } else {
        let mut names: Vec<&str> = St::ALL.iter().map(|st| st.name()).collect();
        for c in Class::ALL {
            if !names.contains(&c.name()) {
                names.push(c.name());
            }
        }
        Err(format!(
            "unknown state {s:?}; use one of {}",
            names.join(", ")
        ))
    }
}

fn matches(filter: Option<&str>, all: bool, info: &SlotInfo, class: Class) -> bool {
    match filter {
        None => all || class != Class::Free,
        Some(f) => info.state.is_some_and(|st| st.name() == f) || class.name() == f,
    }
}

/// Whether the owner word means something for this state.
fn has_owner(info: &SlotInfo) -> bool {
    matches!(info.state, Some(St::Writing | St::Leased | St::Abandoned))
        && info.holder_current
        && info.holder != 0
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::view(&a.path)?;
    let now = now_ms();
    let params = q.params();
    let mut rows = Vec::new();
    let mut more = 0u64;
    for i in 0..q.config().slots {
        let Some(info) = q.slot_info(i) else { break };
        let class = classify(&info, now, params, |h| q.holder_alive(h, now));
        if !matches(a.state.as_deref(), a.all, &info, class) {
            continue;
        }
        if rows.len() < a.limit {
            rows.push((info, class));
        } else {
            more += 1;
        }
    }
    let mut out = Out::new();
    if a.json {
        for (i, c) in &rows {
            out.json(&to_json(&q, i, *c, now))?;
        }
    } else {
        writeln!(
            out,
            "{:>8}  {:<9}  {:<13}  {:>10}  {:>4}  {:>6}  {:<14}  OWNER",
            "SLOT", "STATE", "CLASS", "ID", "RECV", "LEN", "TIME"
        )?;
        for (info, class) in &rows {
            let holds = matches!(info.state, Some(St::Ready | St::Leased | St::Dead));
            let (id, recv, len) = if holds {
                (
                    info.id.to_string(),
                    info.receives.to_string(),
                    info.len.to_string(),
                )
            } else {
                ("-".into(), "-".into(), "-".into())
            };
            let time = if info.state == Some(St::Free) {
                "-".into()
            } else {
                relative(info.time_ms, now)
            };
            let mut owner = if has_owner(info) {
                let alive = if q.holder_alive(info.holder, now) {
                    "alive"
                } else {
                    "gone"
                };
                match q.holder_pid(info.holder) {
                    Some(pid) => format!("pid {pid} ({alive})"),
                    None => format!("holder {:x} ({alive})", info.holder),
                }
            } else {
                "-".into()
            };
            if info.state == Some(St::Dead) {
                owner = format!("reason {}", reason(info.reason).name());
            }
            writeln!(
                out,
                "{:>8}  {:<9}  {:<13}  {:>10}  {:>4}  {:>6}  {:<14}  {owner}",
                info.slot,
                state_name(info),
                class.name(),
                id,
                recv,
                len,
                time,
            )?;
        }
    }
    out.finish()?;
    if more > 0 {
        writeln!(
            io::stderr().lock(),
            "shmq: {more} more slots matched; raise --limit to see them"
        )?;
    }
    Ok(())
}

fn state_name(info: &SlotInfo) -> &'static str {
    match info.state {
        Some(st) if !info.corrupt => st.name(),
        _ => "corrupt",
    }
}

/// The dead reason of a code (the library keeps its decoder private).
fn reason(code: u32) -> DeadReason {
    match code {
        1 => DeadReason::MaxReceives,
        2 => DeadReason::Corrupt,
        3 => DeadReason::Recovered,
        c => DeadReason::Unknown(c),
    }
}

fn to_json(q: &shmq::QueueView, info: &SlotInfo, class: Class, now: u64) -> Value {
    json!({
        "slot": info.slot,
        "state": state_name(info),
        "class": class.name(),
        "gen": info.gen,
        "id": info.id,
        "receives": info.receives,
        "len": info.len,
        "time_unix_ms": mono_to_unix_ms(info.time_ms),
        "time_from_now_ms": info.time_ms as i64 - now as i64,
        "sent_unix_ms": (info.sent_ms != 0).then(|| mono_to_unix_ms(info.sent_ms)),
        "holder": if has_owner(info) { Some(info.holder) } else { None },
        "holder_pid": if has_owner(info) { q.holder_pid(info.holder) } else { None },
        "holder_alive": has_owner(info).then(|| q.holder_alive(info.holder, now)),
        "reason": (info.state == Some(St::Dead)).then(|| reason(info.reason).name()),
    })
}
