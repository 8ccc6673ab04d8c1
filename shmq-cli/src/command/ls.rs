//! `shmq ls`: the queue files of a directory (found by their magic bytes,
//! not their names), one line each.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use shmq::QueueView;

use crate::duration::human_ms;
use crate::exit::Failure;
use crate::output::Out;

/// Directories with at least this many entries get a progress bar on a
/// terminal (each queue file is scanned slot by slot).
const PROGRESS_FROM_FILES: u64 = 1000;

#[derive(clap::Args)]
pub struct Args {
    /// The directory (default: the current one). Not recursive; files
    /// this user cannot read are left out.
    #[arg(default_value = ".")]
    pub dir: PathBuf,
    /// One JSON object per queue and line; keys in this order: path,
    /// capacity, depth (visible), delayed, in_flight, dead,
    /// oldest_visible_age_ms.
    #[arg(long)]
    pub json: bool,
}

pub fn run(a: Args) -> Result<(), Failure> {
    let entries = std::fs::read_dir(&a.dir).map_err(|e| {
        Failure::from(shmq::Error::Io {
            op: "read directory",
            path: a.dir.clone(),
            source: e,
        })
    })?;
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let bar = if paths.len() as u64 >= PROGRESS_FROM_FILES && io::stderr().is_terminal() {
        let bar = ProgressBar::new(paths.len() as u64);
        bar.set_style(
            ProgressStyle::with_template("reading [{bar:40}] {pos}/{len} files")
                .expect("a valid template")
                .progress_chars("=> "),
        );
        bar
    } else {
        ProgressBar::hidden()
    };
    let mut rows = Vec::new();
    for p in &paths {
        bar.inc(1);
        // Files we cannot read are not ours to list; queue files we can
        // see but not open are reported.
        if !shmq::is_queue_file(p).unwrap_or(false) {
            continue;
        }
        match QueueView::open(p) {
            Ok(v) => rows.push((v.stats(), v)),
            Err(e) => {
                bar.suspend(|| {
                    let _ = writeln!(
                        io::stderr().lock(),
                        "shmq: skipped {}: {}",
                        p.display(),
                        Failure::from(e).message
                    );
                });
            }
        }
    }
    bar.finish_and_clear();
    let mut out = Out::new();
    if !a.json && !rows.is_empty() {
        writeln!(
            out,
            "{:<32} {:>9} {:>8} {:>8} {:>9} {:>6} {:>8}",
            "QUEUE", "CAPACITY", "DEPTH", "DELAYED", "IN-FLIGHT", "DEAD", "OLDEST"
        )?;
    }
    for (st, v) in &rows {
        let oldest = st.oldest_visible_age.map(crate::duration::millis);
        if a.json {
            out.json(&json!({
                "path": v.path().display().to_string(),
                "capacity": st.capacity,
                "depth": st.visible,
                "delayed": st.delayed,
                "in_flight": st.in_flight,
                "dead": st.dead,
                "oldest_visible_age_ms": oldest,
            }))?;
        } else {
            writeln!(
                out,
                "{:<32} {:>9} {:>8} {:>8} {:>9} {:>6} {:>8}",
                v.path().display(),
                st.capacity,
                st.visible,
                st.delayed,
                st.in_flight,
                st.dead,
                oldest.map_or("-".into(), human_ms)
            )?;
        }
    }
    out.finish()
}
