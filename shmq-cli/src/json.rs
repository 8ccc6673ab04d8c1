//! JSON that is safe to show on a terminal: every JSON line the tool
//! writes goes through [`write`] (or [`line`]).
//!
//! serde_json escapes only what JSON requires: `"`, `\` and U+0000..U+001F.
//! Strings from a queue file (payloads above all, but also paths and error
//! text) can hold other characters a terminal acts on or that change what
//! a reader sees, and `shmq recv --json` on a terminal is common. The
//! [`TerminalSafe`] formatter also writes these as `\uXXXX` escapes:
//!
//! - DEL (U+007F) and the C1 controls (U+0080..U+009F: CSI U+009B starts a
//!   control sequence as `ESC [` does, OSC U+009D sets a title or a link);
//! - the line and paragraph separators U+2028 and U+2029;
//! - the bidirectional embeddings and overrides U+202A..U+202E and the
//!   isolates U+2066..U+2069 (text that displays in another order than it
//!   reads, as in CVE-2021-42574).
//!
//! The result is still valid JSON and decodes to the same string; only its
//! spelling changes.

use std::io;

use serde::Serialize;
use serde_json::ser::{Formatter, Serializer};

/// Whether `c` is written as a `\uXXXX` escape (beyond what JSON requires);
/// the text output escapes these too.
pub fn terminal_unsafe(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// serde_json's compact formatter (its default methods: no spaces), plus
/// `\uXXXX` escapes for the characters listed in the module docs.
#[derive(Clone, Copy, Debug, Default)]
pub struct TerminalSafe;

impl Formatter for TerminalSafe {
    // serde_json calls this with the runs of a string (keys included)
    // between the escapes it writes itself, so a run holds no `"`, `\` or
    // U+0000..U+001F; every other method is the compact formatter's.
    fn write_string_fragment<W>(&mut self, writer: &mut W, fragment: &str) -> io::Result<()>
    where
        W: ?Sized + io::Write,
    {
        let mut start = 0;
        for (at, c) in fragment.char_indices() {
            if terminal_unsafe(c) {
                writer.write_all(&fragment.as_bytes()[start..at])?;
                // Every escaped character is in the BMP: one \uXXXX, in
                // lowercase hex as serde_json writes \u001b.
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = at + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Write `v` as one compact, terminal-safe JSON value (no newline).
pub fn write<W: io::Write, T: ?Sized + Serialize>(writer: W, v: &T) -> io::Result<()> {
    let mut ser = Serializer::with_formatter(writer, TerminalSafe);
    v.serialize(&mut ser).map_err(io::Error::from)
}

/// `v` as one compact, terminal-safe JSON line, newline included.
pub fn line<T: ?Sized + Serialize>(v: &T) -> Vec<u8> {
    let mut out = Vec::new();
    write(&mut out, v).expect("serialising a JSON value into memory cannot fail");
    out.push(b'\n');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{json, Value};

    #[test]
    fn terminal_controls_are_escaped_and_decode_back() {
        let s = "a\u{1b}[2Jb\u{7f}c\u{80}\u{9b}\u{9d}d\u{a0}e\u{2027}\u{2028}\u{2029}\
                 \u{202a}\u{202e}\u{202f}\u{2065}\u{2066}\u{2069}\u{206a}f";
        let v = json!({ s: s, "n": 1 });
        let out = line(&v);
        let text = std::str::from_utf8(&out).unwrap();
        let esc = "a\\u001b[2Jb\\u007fc\\u0080\\u009b\\u009dd\u{a0}e\u{2027}\\u2028\\u2029\
                   \\u202a\\u202e\u{202f}\u{2065}\\u2066\\u2069\u{206a}f";
        // Keys are escaped as values are; neighbours of the ranges are not.
        assert_eq!(text, format!("{{\"{esc}\":\"{esc}\",\"n\":1}}\n"));
        let back: Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn everything_else_is_as_serde_json_writes_it() {
        let v = json!({
            "text": "plain \"quoted\" \\ caf\u{e9} \u{1f600} \n\t\u{0}",
            "list": [1, -2.5, null, true],
            "empty": {},
        });
        assert_eq!(
            line(&v),
            [serde_json::to_vec(&v).unwrap(), b"\n".to_vec()].concat()
        );
    }
}
