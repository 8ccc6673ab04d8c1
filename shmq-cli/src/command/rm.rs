//! `shmq rm`: remove a queue file, refusing while processes map it.

use std::io::{self, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use serde_json::json;

use crate::exit::{Code, Failure};
use crate::output;

#[derive(clap::Args)]
pub struct Args {
    /// The queue file (write access to its directory needed).
    pub path: PathBuf,
    /// Remove it even while processes map it (they keep working on their
    /// mapping, but no one can open it again), or when its header was
    /// never written (a creator that died).
    #[arg(long)]
    pub force: bool,
    /// Print the result as one JSON object: path, removed, mapped_by.
    #[arg(long)]
    pub json: bool,
}

/// The processes (pid, command name) whose memory maps `path`: a scan of
/// /proc/*/maps for the file's device and inode (or its path). Processes
/// whose maps this user may not read are not seen.
pub fn mapped_by(path: &Path) -> io::Result<Vec<(u32, String)>> {
    let meta = std::fs::metadata(path)?;
    let (dev, ino) = (meta.dev(), meta.ino());
    let want_dev = format!("{:02x}:{:02x}", libc::major(dev), libc::minor(dev));
    let canonical = path.canonicalize()?;
    let name = canonical.to_string_lossy().into_owned();
    let me = std::process::id();
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc")?.filter_map(Result::ok) {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        if pid == me {
            continue;
        }
        let Ok(maps) = std::fs::read_to_string(entry.path().join("maps")) else {
            continue;
        };
        let maps_it = maps.lines().any(|l| {
            let mut f = l.split_whitespace();
            let (_, _, _, d, i) = (f.next(), f.next(), f.next(), f.next(), f.next());
            let rest: Vec<&str> = f.collect();
            let same_inode = d == Some(want_dev.as_str()) && i == Some(ino.to_string().as_str());
            same_inode || rest.join(" ") == name
        });
        if maps_it {
            let comm = std::fs::read_to_string(entry.path().join("comm"))
                .map(|c| c.trim().to_owned())
                .unwrap_or_default();
            found.push((pid, comm));
        }
    }
    Ok(found)
}

pub fn run(a: Args) -> Result<(), Failure> {
    let io_fail = |op, e| {
        Failure::from(shmq::Error::Io {
            op,
            path: a.path.clone(),
            source: e,
        })
    };
    if !a.path.exists() {
        return Err(shmq::Error::NotFound {
            path: a.path.clone(),
        }
        .into());
    }
    let is_queue = shmq::is_queue_file(&a.path)?;
    let unwritten = !is_queue && {
        let head = std::fs::read(&a.path).map_err(|e| io_fail("read", e))?;
        head.iter().take(4096).all(|&b| b == 0)
    };
    let removable = is_queue || (unwritten && a.force);
    if !removable {
        return Err(Failure::new(
            Code::Corrupt,
            format!(
                "{} is not a queue file (no shmq magic bytes); shmq rm removes only queue files{}",
                a.path.display(),
                if unwritten {
                    " (its header is blank: add --force if its creator died)"
                } else {
                    ""
                }
            ),
        ));
    }
    let users = mapped_by(&a.path).map_err(|e| io_fail("scan /proc for", e))?;
    if !users.is_empty() && !a.force {
        let list: Vec<String> = users
            .iter()
            .map(|(pid, comm)| format!("pid {pid} ({comm})"))
            .collect();
        return Err(Failure::new(
            Code::InUse,
            format!(
                "{} is in use: mapped by {}; stop them first, or remove it anyway with --force",
                a.path.display(),
                list.join(", ")
            ),
        ));
    }
    std::fs::remove_file(&a.path).map_err(|e| io_fail("remove", e))?;
    if a.json {
        let pids: Vec<u32> = users.iter().map(|(p, _)| *p).collect();
        return output::print_json(&json!({
            "path": a.path.display().to_string(),
            "removed": true,
            "mapped_by": pids,
        }));
    }
    if !users.is_empty() {
        let _ = writeln!(
            io::stderr().lock(),
            "removed {} while {} process(es) still map it",
            a.path.display(),
            users.len()
        );
    }
    Ok(())
}
