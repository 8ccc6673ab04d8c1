//! What the verbs share: opening the queue (read-write or read-only),
//! writing results to stdout, JSON lines (through [`crate::json`]), and
//! showing payloads.

use std::io::{self, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use base64::Engine;
use serde_json::{json, Map, Value};
use shmq::{Queue, QueueView};

use crate::exit::{needs_write, Failure};
use crate::json;

/// Open the queue file at `path` read-write (for verbs that change it).
pub fn open(path: &Path) -> Result<Queue, Failure> {
    Queue::open(path).map_err(|e| needs_write(path, e))
}

/// Open the queue file at `path` read-only (for verbs that only look).
pub fn view(path: &Path) -> Result<QueueView, Failure> {
    Ok(QueueView::open(path)?)
}

/// Set when the process started with fd 1 closed (`>&-`).
static STDOUT_CLOSED: AtomicBool = AtomicBool::new(false);

/// Open /dev/null on each of fds 0, 1 and 2 that is closed, as Rust's own
/// start-up does (otherwise the queue file could be opened as fd 1 and our
/// output written into it), and remember whether stdout was closed.
#[cfg_attr(test, allow(dead_code))]
pub fn sanitize_standard_fds() {
    for fd in 0..3 {
        // SAFETY: F_GETFD on any integer is harmless: EBADF if it is closed.
        let closed = unsafe { libc::fcntl(fd, libc::F_GETFD) } == -1
            && io::Error::last_os_error().raw_os_error() == Some(libc::EBADF);
        if !closed {
            continue;
        }
        if fd == 1 {
            STDOUT_CLOSED.store(true, Ordering::Relaxed);
        }
        // The lowest free descriptor is `fd` (the ones below it are open).
        // SAFETY: a NUL-terminated path and valid flags.
        let got = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
        if got != fd {
            // Only without a /dev/null: stop rather than let a queue file
            // become a standard descriptor.
            std::process::abort();
        }
    }
}

/// File descriptor 1, unbuffered, with every error reported.
///
/// `std::io::Stdout` treats EBADF as a sink that accepts everything, and a
/// stdout that was closed at start is /dev/null by now: either way
/// `shmq recv --ack >&-` would ack messages nobody got. This writer makes
/// `write(2)` itself, returns its error, and fails with EBADF when stdout
/// was closed at start.
pub struct RawStdout;

impl Write for RawStdout {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if STDOUT_CLOSED.load(Ordering::Relaxed) {
            return Err(io::Error::from_raw_os_error(libc::EBADF));
        }
        // SAFETY: fd 1 is a plain integer (a closed one fails with EBADF);
        // `buf` is valid for `buf.len()` bytes.
        let n = unsafe { libc::write(1, buf.as_ptr().cast(), buf.len()) };
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Buffered stdout for verbs that print many lines: flushed at the end by
/// `finish` (errors, EBADF included, surface there).
pub struct Out {
    buf: io::BufWriter<RawStdout>,
}

impl Out {
    pub fn new() -> Out {
        Out {
            buf: io::BufWriter::with_capacity(64 * 1024, RawStdout),
        }
    }

    /// One compact JSON object and a newline, terminal-safe
    /// ([`json`](crate::json)).
    pub fn json(&mut self, v: &Value) -> Result<(), Failure> {
        json::write(&mut self.buf, v)?;
        self.buf.write_all(b"\n")?;
        Ok(())
    }

    /// Write everything out.
    pub fn finish(mut self) -> Result<(), Failure> {
        self.buf.flush()?;
        Ok(())
    }
}

impl Write for Out {
    fn write(&mut self, b: &[u8]) -> io::Result<usize> {
        self.buf.write(b)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.buf.flush()
    }
}

/// Print one JSON object on its own line and flush.
pub fn print_json(v: &Value) -> Result<(), Failure> {
    let mut out = Out::new();
    out.json(v)?;
    out.finish()
}

/// An object from `json!` of an object literal.
pub fn object(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => unreachable!("json! of an object literal is an object"),
    }
}

/// A payload for JSON: `"encoding": "utf-8"` and `"payload"` as text when
/// it is UTF-8, otherwise `"encoding": "base64"` and the payload in
/// standard base64.
pub fn payload_fields(obj: &mut Map<String, Value>, payload: &[u8]) {
    match std::str::from_utf8(payload) {
        Ok(s) => {
            obj.insert("encoding".into(), json!("utf-8"));
            obj.insert("payload".into(), json!(s));
        }
        Err(_) => {
            obj.insert("encoding".into(), json!("base64"));
            obj.insert(
                "payload".into(),
                json!(base64::engine::general_purpose::STANDARD.encode(payload)),
            );
        }
    }
}

/// A payload on one line of text for people: text as it is (quotes and
/// all), control characters as `\n`, `\t`, `\u{1b}` (and the bidi
/// overrides, isolates and line separators that JSON output escapes too,
/// as `\u{202e}`), bytes that are not UTF-8 as `\xff`; cut to `max`
/// characters (with `...`) when given.
pub fn escaped(payload: &[u8], max: Option<usize>) -> String {
    let mut s = String::new();
    let mut rest = payload;
    loop {
        let (good, bad) = match std::str::from_utf8(rest) {
            Ok(all) => (all, &[][..]),
            Err(e) => {
                let (good, bad) = rest.split_at(e.valid_up_to());
                let n = e.error_len().unwrap_or(bad.len());
                (std::str::from_utf8(good).unwrap_or(""), &bad[..n])
            }
        };
        for c in good.chars() {
            if c.is_control() || json::terminal_unsafe(c) {
                s.extend(c.escape_default());
            } else {
                s.push(c);
            }
        }
        for b in bad {
            s += &format!("\\x{b:02x}");
        }
        let used = good.len() + bad.len();
        if used >= rest.len() {
            break;
        }
        rest = &rest[used..];
    }
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
        assert_eq!(escaped(br#"{"order": 42}"#, None), r#"{"order": 42}"#);
        assert_eq!(escaped(b"\xff", None), "\\xff");
        assert_eq!(escaped(b"ok\xffok\x1b", None), "ok\\xffok\\u{1b}");
        assert_eq!(escaped("caf\u{e9}".as_bytes(), None), "caf\u{e9}");
        assert_eq!(escaped(b"abcdefgh", Some(6)), "abc...");
        assert_eq!(
            escaped("a\u{9b}b\u{202e}c\u{2028}d\u{2066}".as_bytes(), None),
            "a\\u{9b}b\\u{202e}c\\u{2028}d\\u{2066}"
        );
        let mut m = Map::new();
        payload_fields(&mut m, b"\xff\x00");
        assert_eq!(m["encoding"], "base64");
        assert_eq!(m["payload"], json!("/wA="));
        let mut m = Map::new();
        payload_fields(&mut m, b"hi");
        assert_eq!(
            (m["encoding"].as_str(), m["payload"].as_str()),
            (Some("utf-8"), Some("hi"))
        );
    }
}
