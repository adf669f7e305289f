//! A terminal worker's terminal as the server keeps it: the screen, parsed from every
//! byte the program wrote (`vt100`), so a viewer that connects late is shown the screen
//! at once rather than hours of bytes; and who decides the terminal's size when several
//! viewers with windows of different sizes watch it (the one who typed last).
//!
//! It lives in the worker's state and is changed under the worker's lock, in the same
//! step that publishes the bytes: a snapshot names exactly the last event it includes.

pub mod charset;

use std::collections::HashMap;

use crate::event::{TerminalData, TerminalSize, TerminalSnapshot};

/// Lines kept above the screen (what a late viewer can scroll back to). Memory is at
/// most this many rows of cells.
pub const SCROLLBACK_LINES: usize = 1000;

/// The screen of a terminal worker.
pub struct Screen {
    parser: vt100::Parser,
    /// What `vt100` does not keep: line drawing (`charset.rs`).
    charset: charset::LineDrawing,
}

impl Screen {
    pub fn new(size: TerminalSize) -> Screen {
        Screen {
            parser: vt100::Parser::new(size.rows, size.cols, SCROLLBACK_LINES),
            charset: charset::LineDrawing::default(),
        }
    }

    pub fn process(&mut self, bytes: &[u8]) {
        let bytes = self.charset.filter(bytes);
        self.parser.process(&bytes);
    }

    pub fn size(&self) -> TerminalSize {
        let (rows, cols) = self.parser.screen().size();
        TerminalSize { cols, rows }
    }

    pub fn resize(&mut self, size: TerminalSize) {
        self.parser.screen_mut().set_size(size.rows, size.cols);
    }

    /// The screen's text, without attributes (for tests and comparisons).
    pub fn contents(&self) -> String {
        self.parser.screen().contents()
    }

    /// The screen as bytes that draw it on a reset terminal of its size: the scrollback
    /// lines first (pushed up into the viewer's own scrollback), then the screen with
    /// its attributes and cursor; behind a full-screen program, the normal screen first
    /// and then the alternate one, so the viewer gets the normal one back when the
    /// program ends; last the input modes. `seq` is the last event it includes.
    pub fn snapshot(&mut self, seq: u64) -> TerminalSnapshot {
        let size = self.size();
        let alternate = self.parser.screen().alternate_screen();
        let mut bytes = Vec::new();
        // `?47` switches grids without clearing or moving anything (unlike `?1049`).
        if alternate {
            self.parser.process(b"\x1b[?47l");
        }
        let scrollback = self.write_normal_screen(&mut bytes);
        if alternate {
            self.parser.process(b"\x1b[?47h");
            bytes.extend_from_slice(b"\x1b[?1049h");
            bytes.extend_from_slice(&self.parser.screen().contents_formatted());
        }
        let screen = self.parser.screen();
        bytes.extend_from_slice(&screen.input_mode_formatted());
        bytes.extend_from_slice(&self.charset.restore());
        TerminalSnapshot {
            seq,
            cols: size.cols,
            rows: size.rows,
            screen: TerminalData::from_bytes(bytes),
            cursor: screen.cursor_position(),
            alternate_screen: alternate,
            scrollback,
        }
    }

    /// Writes the normal screen's scrollback and screen; returns the scrollback's lines.
    fn write_normal_screen(&mut self, bytes: &mut Vec<u8>) -> usize {
        let size = self.size();
        let screen = self.parser.screen_mut();
        screen.set_scrollback(usize::MAX);
        let total = screen.scrollback();
        let rows = usize::from(size.rows);
        // Each view of the scrollback shows `rows` lines starting `offset` lines above
        // the screen: take its top ones, oldest first.
        let mut offset = total;
        while offset > 0 {
            screen.set_scrollback(offset);
            let take = rows.min(offset);
            for row in screen.rows_formatted(0, size.cols).take(take) {
                bytes.extend_from_slice(&row);
                bytes.extend_from_slice(b"\x1b[m\r\n");
            }
            offset -= take;
        }
        screen.set_scrollback(0);
        if total > 0 {
            // Scroll the last of them off the screen, which is drawn next.
            bytes.extend(b"\r\n".repeat(rows.saturating_sub(1)));
        }
        bytes.extend_from_slice(&screen.contents_formatted());
        total
    }
}

/// Which viewer's window the terminal's size follows: the one who typed last (until it
/// leaves; then the next one that says its size). Viewers are connections, by id.
#[derive(Default)]
pub struct Driver {
    sizes: HashMap<u64, TerminalSize>,
    driver: Option<u64>,
}

impl Driver {
    /// `viewer`'s window has `size`: the size to set, if `viewer` drives (or nobody does).
    pub fn viewer_size(&mut self, viewer: u64, size: TerminalSize) -> Option<TerminalSize> {
        self.sizes.insert(viewer, size);
        match self.driver {
            Some(driver) if driver != viewer => None,
            _ => {
                self.driver = Some(viewer);
                Some(size)
            }
        }
    }

    /// `viewer` typed: it drives from now on; the size to set, if it takes over.
    pub fn typed(&mut self, viewer: u64) -> Option<TerminalSize> {
        if self.driver == Some(viewer) {
            return None;
        }
        self.driver = Some(viewer);
        self.sizes.get(&viewer).copied()
    }

    pub fn left(&mut self, viewer: u64) {
        self.sizes.remove(&viewer);
        if self.driver == Some(viewer) {
            self.driver = None;
        }
    }
}

/// A terminal worker's terminal: its screen and who drives its size.
pub struct TerminalState {
    pub screen: Screen,
    pub driver: Driver,
}

impl TerminalState {
    pub fn new(size: TerminalSize) -> TerminalState {
        TerminalState {
            screen: Screen::new(size),
            driver: Driver::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn replay(snapshot: &TerminalSnapshot) -> vt100::Parser {
        let mut parser = vt100::Parser::new(snapshot.rows, snapshot.cols, SCROLLBACK_LINES);
        parser.process(&snapshot.screen.bytes().unwrap());
        parser
    }

    #[test]
    fn a_snapshot_draws_the_same_screen_and_scrollback() {
        let size = TerminalSize { cols: 20, rows: 5 };
        let mut screen = Screen::new(size);
        for i in 0..12 {
            screen.process(format!("line \x1b[1;31m{i}\x1b[m\r\n").as_bytes());
        }
        screen.process(b"$ half");
        let snapshot = screen.snapshot(42);
        assert_eq!(snapshot.seq, 42);
        assert_eq!(snapshot.scrollback, 8);
        let mut copy = replay(&snapshot);
        assert_eq!(copy.screen().contents(), screen.contents());
        assert_eq!(
            copy.screen().cursor_position(),
            screen.parser.screen().cursor_position()
        );
        assert_eq!(
            copy.screen().contents_formatted(),
            screen.parser.screen().contents_formatted()
        );
        copy.screen_mut().set_scrollback(usize::MAX);
        assert_eq!(copy.screen().scrollback(), 8);
        assert!(copy.screen().contents().starts_with("line 0\nline 1\n"));
    }

    #[test]
    fn a_full_screen_program_is_shown_on_the_alternate_screen() {
        let mut screen = Screen::new(TerminalSize { cols: 30, rows: 6 });
        screen.process(b"prompt$ vim\r\n\x1b[?1049h\x1b[H\x1b[2J\x1b[7mtitle\x1b[m\x1b[3;4Hx");
        let snapshot = screen.snapshot(1);
        assert!(snapshot.alternate_screen);
        let copy = replay(&snapshot);
        assert!(copy.screen().alternate_screen());
        assert_eq!(copy.screen().contents(), screen.contents());
        assert_eq!(copy.screen().cursor_position(), (2, 4));
    }

    #[test]
    fn the_size_follows_whoever_typed_last() {
        let small = TerminalSize { cols: 40, rows: 10 };
        let large = TerminalSize {
            cols: 120,
            rows: 40,
        };
        let mut driver = Driver::default();
        assert_eq!(driver.viewer_size(1, small), Some(small));
        assert_eq!(driver.viewer_size(2, large), None, "1 drives");
        assert_eq!(driver.typed(1), None);
        assert_eq!(driver.typed(2), Some(large));
        assert_eq!(driver.viewer_size(1, small), None, "2 drives now");
        driver.left(2);
        assert_eq!(driver.viewer_size(1, small), Some(small));
    }
}
