//! The events of a terminal worker: the bytes its program wrote to the terminal
//! (`terminal`), a change of the terminal's size (`terminal_resize`), and the screen as
//! it is now (`terminal_snapshot`, sent to one viewer when it connects, without a seq).
//!
//! A terminal's output is bytes, not lines: escape sequences, partial lines, and now and
//! then something that is not UTF-8. `TerminalData` carries them exactly: as text when
//! they are valid UTF-8 (nearly always: the reader never cuts a character in two), as
//! base64 otherwise, flagged by `encoding`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

/// A terminal's size in character cells.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TerminalSize {
    pub cols: u16,
    pub rows: u16,
}

impl TerminalSize {
    /// The size a terminal worker starts with unless its spec says otherwise.
    pub const DEFAULT: TerminalSize = TerminalSize { cols: 80, rows: 24 };
    pub const COLS: std::ops::RangeInclusive<u16> = 2..=1000;
    pub const ROWS: std::ops::RangeInclusive<u16> = 1..=500;

    /// A size within the limits, or a sentence saying which limit it breaks.
    pub fn checked(cols: u64, rows: u64) -> Result<TerminalSize, String> {
        let in_range = |value: u64, range: &std::ops::RangeInclusive<u16>| {
            u16::try_from(value).ok().filter(|v| range.contains(v))
        };
        match (in_range(cols, &Self::COLS), in_range(rows, &Self::ROWS)) {
            (Some(cols), Some(rows)) => Ok(TerminalSize { cols, rows }),
            _ => Err(format!(
                "a terminal is {}..={} columns by {}..={} rows; {cols}x{rows} is not",
                Self::COLS.start(),
                Self::COLS.end(),
                Self::ROWS.start(),
                Self::ROWS.end()
            )),
        }
    }
}

/// How `TerminalData::data` holds the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Encoding {
    Base64,
}

/// `{"type":"terminal","data":"..."}`, with `"encoding":"base64"` when the bytes are
/// not UTF-8.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminalData {
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encoding: Option<Encoding>,
}

impl TerminalData {
    /// Takes the bytes: text (nearly always) becomes `data` without a copy.
    pub fn from_bytes(bytes: Vec<u8>) -> TerminalData {
        match String::from_utf8(bytes) {
            Ok(data) => TerminalData {
                data,
                encoding: None,
            },
            Err(err) => TerminalData {
                data: BASE64.encode(err.as_bytes()),
                encoding: Some(Encoding::Base64),
            },
        }
    }

    /// The bytes as the program wrote them (None: base64 that does not decode).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        match self.encoding {
            None => Some(self.data.as_bytes().to_vec()),
            Some(Encoding::Base64) => BASE64.decode(&self.data).ok(),
        }
    }
}

/// The screen as it is at `seq`: what a viewer that connects shows before the bytes
/// that come after `seq`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TerminalSnapshot {
    /// The last event the screen includes; live events follow from the next one.
    pub seq: u64,
    pub cols: u16,
    pub rows: u16,
    /// Bytes that draw the screen on a reset terminal of this size: the scrollback
    /// lines, then the screen with its colors and attributes, the cursor and the input
    /// modes (as `TerminalData`).
    #[serde(flatten)]
    pub screen: TerminalData,
    /// The cursor's row and column (from 0).
    pub cursor: (u16, u16),
    /// Whether a full-screen program has the alternate screen.
    pub alternate_screen: bool,
    /// Lines of scrollback included before the screen.
    pub scrollback: usize,
}

/// Where `bytes` may be cut so that no UTF-8 character is split: the length of the
/// longest prefix that does not end inside a character that could still be completed.
/// Bytes that can never be UTF-8 do not hold anything back.
pub fn utf8_boundary(bytes: &[u8]) -> usize {
    // A character is at most 4 bytes: only the last 3 can be an unfinished one.
    let tail_start = bytes.len().saturating_sub(3);
    for start in (tail_start..bytes.len()).rev() {
        let lead = bytes[start];
        if lead & 0xC0 == 0x80 {
            continue; // a continuation byte: look further back for its lead
        }
        let needed = match lead {
            0xC2..=0xDF => 2,
            0xE0..=0xEF => 3,
            0xF0..=0xF4 => 4,
            _ => return bytes.len(),
        };
        let unfinished = bytes.len() - start < needed
            // Unfinished, unless already invalid (then it never completes).
            && matches!(std::str::from_utf8(&bytes[start..]), Err(err) if err.error_len().is_none());
        return if unfinished { start } else { bytes.len() };
    }
    bytes.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_stays_text_and_other_bytes_go_as_base64() {
        let text = TerminalData::from_bytes("héllo\x1b[0m".into());
        assert_eq!(text.encoding, None);
        assert_eq!(text.bytes().unwrap(), "héllo\x1b[0m".as_bytes());
        let raw = TerminalData::from_bytes(b"a\xff\xfeb".to_vec());
        assert_eq!(raw.encoding, Some(Encoding::Base64));
        assert_eq!(raw.bytes().unwrap(), b"a\xff\xfeb");
        let json = serde_json::to_string(&raw).unwrap();
        assert!(json.contains("\"encoding\":\"base64\""), "{json}");
    }

    #[test]
    fn a_character_cut_at_the_end_is_held_back() {
        let e_acute = "é".as_bytes(); // C3 A9
        assert_eq!(utf8_boundary(b"abc"), 3);
        assert_eq!(utf8_boundary(&[b'a', e_acute[0]]), 1);
        assert_eq!(utf8_boundary(&[b'a', e_acute[0], e_acute[1]]), 3);
        let snowman = "☃".as_bytes(); // 3 bytes
        assert_eq!(utf8_boundary(&snowman[..2]), 0);
        let emoji = "😀".as_bytes(); // 4 bytes
        assert_eq!(utf8_boundary(&emoji[..3]), 0);
        assert_eq!(utf8_boundary(emoji), 4);
        // Never UTF-8: nothing to wait for.
        assert_eq!(utf8_boundary(b"a\xff"), 2);
        assert_eq!(utf8_boundary(b"a\xc3\x41"), 3);
    }

    #[test]
    fn sizes_are_checked() {
        assert!(TerminalSize::checked(80, 24).is_ok());
        assert!(TerminalSize::checked(1, 24).is_err());
        assert!(TerminalSize::checked(80, 0).is_err());
        assert!(TerminalSize::checked(70000, 24).is_err());
    }
}
