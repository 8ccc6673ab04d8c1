//! `shmq purge`: delete every visible message (SQS's purge-queue).

use std::io::{self, Write};
use std::path::PathBuf;
use std::time::Duration;

use serde_json::json;

use crate::exit::{Code, Failure};
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file (write access needed).
    pub path: PathBuf,
    /// Confirm: the messages are deleted for good.
    #[arg(long)]
    pub yes: bool,
    /// Print the result as one JSON object: {"purged": N}.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let q = output::open(&a.path)?;
    let visible = q.stats().visible;
    if !a.yes {
        return Err(Failure::new(
            Code::Usage,
            format!(
                "purge deletes the {visible} visible message{} of {} for good; add --yes to confirm",
                if visible == 1 { "" } else { "s" },
                a.path.display()
            ),
        ));
    }
    // Each visible message is leased and acked, as any consumer would (the
    // acked counter counts them). Bounded by what was visible at the start,
    // so a busy producer cannot keep it going; delayed, leased and dead
    // messages stay.
    let mut n = 0u64;
    let mut buf = Vec::new();
    while n < visible {
        let Some(d) = q.try_receive_into(
            &mut buf,
            Some(shmq::Visibility::new(Duration::from_secs(60))?),
        ) else {
            break;
        };
        match q.ack(d.receipt) {
            Ok(()) => n += 1,
            Err(shmq::Error::LeaseLost) => {}
            Err(e) => return Err(e.into()),
        }
    }
    if a.json {
        return output::print_json(&json!({ "purged": n }));
    }
    let _ = writeln!(
        io::stderr().lock(),
        "purged {n} message{}",
        if n == 1 { "" } else { "s" }
    );
    Ok(())
}
