//! What the verbs share: opening the queue, writing JSON, showing payloads.

use std::io::{self, Write};
use std::path::Path;

use serde_json::{json, Map, Value};
use shmq::Queue;

use crate::exit::Failure;

/// Open the queue file at `path`, with the library's errors as failures.
pub fn open(path: &Path) -> Result<Queue, Failure> {
    Ok(Queue::open(path)?)
}

/// Print `v` to stdout as pretty JSON and a newline.
pub fn print_json(v: &Value) -> Result<(), Failure> {
    let mut out = io::stdout().lock();
    serde_json::to_writer_pretty(&mut out, v).map_err(io::Error::from)?;
    writeln!(out)?;
    out.flush()?;
    Ok(())
}

/// A payload for JSON: `"payload"` as a string when it is UTF-8, otherwise
/// `"payload": null` and `"payload_hex"`.
pub fn payload_fields(obj: &mut Map<String, Value>, payload: &[u8]) {
    match std::str::from_utf8(payload) {
        Ok(s) => {
            obj.insert("payload".into(), json!(s));
        }
        Err(_) => {
            obj.insert("payload".into(), Value::Null);
            obj.insert("payload_hex".into(), json!(hex(payload)));
        }
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A payload on one line of text: printable as is, the rest escaped; cut to
/// `max` characters (with `...`) when `max` is given.
pub fn escaped(payload: &[u8], max: Option<usize>) -> String {
    let s: String = match std::str::from_utf8(payload) {
        Ok(s) => s.escape_debug().collect(),
        Err(_) => payload.escape_ascii().to_string(),
    };
    match max {
        Some(m) if s.chars().count() > m => {
            let cut: String = s.chars().take(m.saturating_sub(3)).collect();
            format!("{cut}...")
        }
        _ => s,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payloads_show_safely() {
        assert_eq!(escaped(b"a\nb", None), "a\\nb");
        assert_eq!(escaped(b"\xff", None), "\\xff");
        assert_eq!(escaped(b"abcdefgh", Some(6)), "abc...");
        let mut m = Map::new();
        payload_fields(&mut m, b"\xff\x00");
        assert_eq!(m["payload"], Value::Null);
        assert_eq!(m["payload_hex"], json!("ff00"));
    }
}
