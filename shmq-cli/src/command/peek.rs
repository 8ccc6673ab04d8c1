//! `shmq peek`: read visible messages without leasing them.

use std::io::{self, Write};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::duration::{ago_ms, human_ms, unix_ms};
use crate::exit::Failure;
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file.
    pub path: PathBuf,
    /// Show at most this many, oldest id first.
    #[arg(long, default_value_t = 10)]
    pub limit: usize,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let msgs = q.peek(a.limit);
    if a.json {
        let list = msgs
            .iter()
            .map(|p| {
                let Value::Object(mut m) = json!({
                    "id": p.id,
                    "receives": p.receives,
                    "sent_unix_ms": unix_ms(p.sent_at),
                    "age_ms": ago_ms(p.sent_at),
                    "len": p.payload.len(),
                }) else {
                    unreachable!("json! of an object literal is an object")
                };
                output::payload_fields(&mut m, &p.payload);
                Value::Object(m)
            })
            .collect();
        return output::print_json(&Value::Array(list));
    }
    let mut out = io::stdout().lock();
    for p in &msgs {
        writeln!(
            out,
            "id {} (age {}, {} receives): {}",
            p.id,
            human_ms(ago_ms(p.sent_at)),
            p.receives,
            output::escaped(&p.payload, None)
        )?;
    }
    Ok(())
}
