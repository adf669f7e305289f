//! The DEC line-drawing character set, which the `vt100` parser does not keep.
//!
//! Full-screen programs (ncurses boxes, `mc`, `htop`'s borders) draw lines by switching
//! to the DEC special graphics set (`ESC ( 0`, or `ESC ) 0` and SO) and writing plain
//! letters: `q` is `─`, `x` is `│`. A terminal emulator remembers the switch; `vt100`
//! ignores it and would keep the letters, so a snapshot would show `lqqqk` where the
//! program drew `┌───┐`. This filter sits in front of the parser (only the server's
//! screen; viewers get the program's bytes as they were) and turns those letters into
//! the Unicode characters they stand for.

/// Which set a slot (G0, G1) holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Set {
    #[default]
    Ascii,
    DecGraphics,
}

/// Where the filter is in the byte stream: only plain text is translated, never the
/// bytes of an escape sequence or a string (a title, a hyperlink).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum State {
    #[default]
    Ground,
    Escape,
    /// After `ESC (` or `ESC )`: the next byte names the set for G0 or G1.
    Designate(u8),
    /// After another intermediate byte of an escape sequence.
    EscapeIntermediate,
    Csi,
    /// OSC, DCS, APC, PM, SOS: until BEL or ST.
    String,
    StringEscape,
}

#[derive(Default)]
pub struct LineDrawing {
    g0: Set,
    g1: Set,
    /// SO selected G1.
    shifted: bool,
    state: State,
}

fn dec_graphics(byte: u8) -> Option<char> {
    const TABLE: [char; 32] = [
        ' ', '◆', '▒', '␉', '␌', '␍', '␊', '°', '±', '␤', '␋', '┘', '┐', '┌', '└', '┼', '⎺', '⎻',
        '─', '⎼', '⎽', '├', '┤', '┴', '┬', '│', '≤', '≥', 'π', '≠', '£', '·',
    ];
    (0x5f..=0x7e)
        .contains(&byte)
        .then(|| TABLE[usize::from(byte - 0x5f)])
}

impl LineDrawing {
    fn active(&self) -> Set {
        if self.shifted { self.g1 } else { self.g0 }
    }

    /// Whether no set other than ASCII is designated (the common case: `data` is
    /// passed on as it is, after only watching for escapes).
    fn plain(&self) -> bool {
        self.g0 == Set::Ascii && self.g1 == Set::Ascii
    }

    /// `data` with line-drawing letters replaced; borrowed when nothing changed (it is
    /// copied only from the first letter that is replaced).
    pub fn filter<'a>(&mut self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        // Fast path: nothing designated and no escape that could designate one.
        if self.plain() && self.state == State::Ground && !data.contains(&0x1b) {
            return std::borrow::Cow::Borrowed(data);
        }
        let mut out: Option<Vec<u8>> = None;
        for (at, &byte) in data.iter().enumerate() {
            match self.step(byte) {
                Some(c) => {
                    let out = out.get_or_insert_with(|| {
                        let mut copy = Vec::with_capacity(data.len() + data.len() / 2);
                        copy.extend_from_slice(&data[..at]);
                        copy
                    });
                    let mut buf = [0u8; 4];
                    out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                }
                None => {
                    if let Some(out) = out.as_mut() {
                        out.push(byte);
                    }
                }
            }
        }
        match out {
            Some(out) => std::borrow::Cow::Owned(out),
            None => std::borrow::Cow::Borrowed(data),
        }
    }

    /// Follows `byte`; the character it stands for if it is a line-drawing letter.
    fn step(&mut self, byte: u8) -> Option<char> {
        match self.state {
            State::Ground => match byte {
                0x1b => self.state = State::Escape,
                0x0e => self.shifted = true,
                0x0f => self.shifted = false,
                _ => {
                    if self.active() == Set::DecGraphics {
                        return dec_graphics(byte);
                    }
                }
            },
            State::Escape => {
                self.state = match byte {
                    b'(' | b')' => State::Designate(byte),
                    b'[' => State::Csi,
                    b']' | b'P' | b'_' | b'^' | b'X' => State::String,
                    b'c' => {
                        // A full reset.
                        *self = LineDrawing::default();
                        State::Ground
                    }
                    0x20..=0x2f => State::EscapeIntermediate,
                    _ => State::Ground,
                };
            }
            State::Designate(slot) => {
                let set = if byte == b'0' {
                    Set::DecGraphics
                } else {
                    Set::Ascii
                };
                if slot == b'(' {
                    self.g0 = set;
                } else {
                    self.g1 = set;
                }
                self.state = State::Ground;
            }
            State::EscapeIntermediate => {
                if !(0x20..=0x2f).contains(&byte) {
                    self.state = State::Ground;
                }
            }
            State::Csi => {
                if (0x40..=0x7e).contains(&byte) {
                    self.state = State::Ground;
                }
            }
            State::String => match byte {
                0x07 => self.state = State::Ground,
                0x1b => self.state = State::StringEscape,
                _ => {}
            },
            State::StringEscape => {
                self.state = if byte == b'\\' {
                    State::Ground
                } else {
                    State::String
                };
            }
        }
        None
    }

    /// The escapes that put a viewer's terminal in the same sets (after a snapshot,
    /// whose text is already translated).
    pub fn restore(&self) -> Vec<u8> {
        let mut out = Vec::new();
        if self.g0 == Set::DecGraphics {
            out.extend_from_slice(b"\x1b(0");
        }
        if self.g1 == Set::DecGraphics {
            out.extend_from_slice(b"\x1b)0");
        }
        if self.shifted {
            out.push(0x0e);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_drawing_letters_become_box_characters_and_nothing_else_changes() {
        let mut f = LineDrawing::default();
        let out = f.filter(b"ab\x1b(0lqqk\x1b(B lqk \x1b]0;lqk\x07x");
        assert_eq!(
            String::from_utf8(out.into_owned()).unwrap(),
            "ab\x1b(0┌──┐\x1b(B lqk \x1b]0;lqk\x07x"
        );
        // G1 and shifts, across chunks.
        let mut f = LineDrawing::default();
        assert_eq!(&*f.filter(b"\x1b)"), b"\x1b)");
        assert_eq!(&*f.filter(b"0\x0ex\x0fx"), "0\x0e│\x0fx".as_bytes());
        assert!(f.restore().starts_with(b"\x1b)0"));
        // CSI parameters are never translated.
        let mut f = LineDrawing::default();
        let out = f.filter(b"\x1b(0\x1b[1;31mq");
        assert_eq!(&*out, "\x1b(0\x1b[1;31m─".as_bytes());
    }
}
