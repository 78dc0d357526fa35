//! The code points no view may write raw, and JSON that escapes them.
//!
//! JSON (RFC 8259 §7) only requires U+0000-U+001F, `"` and `\` to be
//! escaped, so serde_json writes everything else as it came from the wire.
//! Some of it acts on whoever reads the output in a terminal or an editor:
//! DEL (U+007F), the C1 controls U+0080-U+009F (U+009B is a one-byte CSI on
//! terminals that honour 8-bit controls), the line and paragraph separators
//! U+2028/U+2029 (line breaks to JavaScript and many viewers) and the bidi
//! embeddings, overrides and isolates U+202A-U+202E, U+2066-U+2069
//! ("Trojan Source", CVE-2021-42574). This file owns that list
//! (`is_hostile`), `Json`, a serde_json `Formatter` that writes them as
//! `\uXXXX`, and `json_line`. It must not decide anything or change how
//! printable text is shown (text mode and the tables escape by their own
//! rules in output.rs and edges.rs; DOT in graph.rs uses `is_hostile`).
//!
//! Invariant: a string with no hostile code point is written in one piece
//! without allocating; the check is a byte scan for the three lead bytes
//! the hostile code points can start with in UTF-8 (0x7F, 0xC2, 0xE2).

use std::io::{self, Write};

use serde::Serialize;
use serde_json::ser::Formatter;

/// Whether `c` must never reach the output raw.
pub fn is_hostile(c: char) -> bool {
    matches!(
        c,
        '\u{7f}'..='\u{9f}' | '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
    )
}

/// Whether `s` may hold a hostile code point: a scan with no false
/// negatives. Every hostile code point's UTF-8 form has a byte >= 0x7F
/// (0x7F itself, or a lead byte 0xC2 / 0xE2), so a string whose bytes are
/// all below 0x7F is clean. Every JSON key and value passes through here,
/// mostly short, so the test runs eight bytes at a time with no call
/// (memchr's SIMD search costs more in setup than these strings take).
pub fn may_be_hostile(s: &str) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let bytes = s.as_bytes();
    let mut words = bytes.chunks_exact(8);
    // A byte >= 0x80 has its high bit set; 0x7F gets it from the +1. A
    // carry only leaves a byte 0xFF, which is flagged already: no false
    // negative (a false positive just takes the careful path).
    let flagged = |w: u64| (w | w.wrapping_add(ONES)) & HIGH != 0;
    for chunk in words.by_ref() {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if flagged(u64::from_le_bytes(w)) {
            return true;
        }
    }
    words.remainder().iter().any(|&b| b >= 0x7f)
}

/// serde_json's compact output (the trait's default methods are its
/// `CompactFormatter`'s) with the hostile code points escaped as `\uXXXX`
/// inside strings.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Formatter for Json {
    fn write_string_fragment<W: ?Sized + Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        if !may_be_hostile(fragment) {
            return writer.write_all(fragment.as_bytes());
        }
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if is_hostile(c) {
                writer.write_all(fragment.get(start..i).unwrap_or_default().as_bytes())?;
                write!(writer, "\\u{:04x}", u32::from(c))?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(fragment.get(start..).unwrap_or_default().as_bytes())
    }
}

/// Serialize `value` as compact JSON with `Json`'s escaping into `out`.
/// An I/O error keeps its kind (a broken pipe must stay `BrokenPipe`:
/// `| head` is a clean exit).
pub fn write_json<W: Write, T: Serialize + ?Sized>(out: W, value: &T) -> io::Result<()> {
    let mut ser = serde_json::Serializer::with_formatter(out, Json);
    value.serialize(&mut ser).map_err(io::Error::from)
}

/// `value` as one line of compact JSON with `Json`'s escaping (no newline).
pub fn json_line<T: Serialize + ?Sized>(value: &T) -> String {
    let mut buf = Vec::with_capacity(256);
    if write_json(&mut buf, value).is_err() {
        return String::new();
    }
    // serde_json writes UTF-8 and our escapes are ASCII.
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every hostile code point, listed by hand from the ranges above.
    fn hostile() -> Vec<char> {
        let mut v: Vec<char> = ('\u{7f}'..='\u{9f}').collect();
        v.extend(['\u{2028}', '\u{2029}']);
        v.extend('\u{202a}'..='\u{202e}');
        v.extend('\u{2066}'..='\u{2069}');
        v
    }

    #[test]
    fn every_hostile_code_point_is_escaped_and_round_trips() {
        for c in hostile() {
            assert!(is_hostile(c), "{c:?}");
            let s = format!("a{c}b\"§");
            let line = json_line(&s);
            assert!(!line.contains(c), "{c:?} raw in {line}");
            let esc = format!("\\u{:04x}", u32::from(c));
            assert!(line.contains(&esc), "{esc} missing in {line}");
            let back: String = serde_json::from_str(&line).unwrap();
            assert_eq!(back, s);
        }
    }

    #[test]
    fn neighbours_and_printable_text_are_left_alone() {
        for c in [
            '~', '\u{a0}', '§', 'é', '\u{2027}', '\u{202f}', '\u{2065}', '\u{206a}',
        ] {
            assert!(!is_hostile(c), "{c:?}");
            let s = format!("x{c}");
            assert_eq!(json_line(&s), serde_json::to_string(&s).unwrap());
        }
    }

    #[test]
    fn write_errors_keep_their_kind() {
        struct Broken;
        impl Write for Broken {
            fn write(&mut self, _: &[u8]) -> io::Result<usize> {
                Err(io::ErrorKind::BrokenPipe.into())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let e = write_json(Broken, "x\u{9b}").unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::BrokenPipe);
    }

    #[test]
    fn the_byte_scan_has_no_false_negative() {
        for c in hostile() {
            assert!(may_be_hostile(&c.to_string()), "{c:?}");
        }
        assert!(!may_be_hostile("plain ascii, no escapes"));
        // At every offset of a word, in the eight-byte path and the tail.
        for c in hostile() {
            for pad in 0..17 {
                let s = format!("{}{c}{}", "~".repeat(pad), "a".repeat(9));
                assert!(may_be_hostile(&s), "{c:?} after {pad} bytes");
            }
        }
        // 0x7E (the highest clean byte) fills words without a false alarm.
        assert!(!may_be_hostile(&"~".repeat(64)));
    }
}
