//! `shmq peek`: read visible messages without leasing them.

use std::io::Write;
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::duration::{ago_ms, human_ms, unix_ms};
use crate::exit::Failure;
use crate::output::{self, Out};

#[derive(clap::Args)]
pub struct Args {
    /// The queue file (read access is enough).
    pub path: PathBuf,
    /// Show at most this many, oldest id first.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// One JSON object per message and line; keys in this order: id,
    /// receives, sent_unix_ms, age_ms, len, encoding (utf-8 or base64),
    /// payload.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::view(&a.path)?;
    let msgs = q.peek(a.limit);
    let mut out = Out::new();
    for p in &msgs {
        if a.json {
            let mut m = output::object(json!({
                "id": p.id,
                "receives": p.receives,
                "sent_unix_ms": unix_ms(p.sent_at),
                "age_ms": ago_ms(p.sent_at),
                "len": p.payload.len(),
            }));
            output::payload_fields(&mut m, &p.payload);
            out.json(&Value::Object(m))?;
        } else {
            writeln!(
                out,
                "id {} (age {}, {} receives): {}",
                p.id,
                human_ms(ago_ms(p.sent_at)),
                p.receives,
                output::escaped(&p.payload, None)
            )?;
        }
    }
    out.finish()
}
