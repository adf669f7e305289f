//! A terminal worker (`"terminal": true`): its program runs in a pseudo-terminal
//! (`process::pty`), its output is published as `terminal` events and parsed into the
//! screen (`crate::terminal`) in the same step, under the worker's lock; viewers type
//! into it (raw bytes: Ctrl-C is a byte for the terminal's line discipline, not a
//! signal from workerhub) and size it (the one who typed last decides).

use std::ffi::OsString;
use std::sync::Arc;

use super::{Worker, WorkerState};
use crate::error::{Error, ErrorCode};
use crate::event::{Event, TerminalData, TerminalSize, TerminalSnapshot};
use crate::process::ledger::Owner;
use crate::process::{Process, ProcessSink, ProcessSpec, StdinError};

impl Worker {
    /// Whether the worker's program runs in a terminal.
    pub fn is_terminal(&self) -> bool {
        self.spec.options.terminal.is_some()
    }

    /// Starts the worker's process: in a terminal of the screen's current size for a
    /// terminal worker, with pipes otherwise.
    pub(super) fn spawn_process(
        &self,
        st: &WorkerState,
        spec: &ProcessSpec,
        env: Vec<(OsString, OsString)>,
        sink: Arc<dyn ProcessSink>,
    ) -> std::io::Result<Arc<Process>> {
        let owner = Owner::Worker(self.id.clone());
        match &st.terminal {
            Some(terminal) => {
                self.engine
                    .processes
                    .spawn_terminal(spec, env, sink, owner, terminal.screen.size())
            }
            None => self.engine.processes.spawn(spec, env, sink, owner),
        }
    }

    /// Bytes the program wrote: into the screen and out to every viewer, in one step.
    pub(super) fn on_terminal(&self, data: Vec<u8>) {
        let mut st = self.lock();
        if let Some(terminal) = st.terminal.as_mut() {
            terminal.screen.process(&data);
        }
        self.feed
            .publish(&[Event::Terminal(TerminalData::from_bytes(data))]);
    }

    /// The screen as it is now, with the seq of the last event it includes: a viewer
    /// shows it, then the events after that seq. None for a worker without a terminal.
    pub fn terminal_snapshot(&self) -> Option<TerminalSnapshot> {
        let mut st = self.lock();
        let seq = self.feed.last_seq();
        st.terminal.as_mut().map(|t| t.screen.snapshot(seq))
    }

    /// Writes what `viewer` typed to the terminal; the size follows the one who typed.
    pub fn terminal_input(&self, viewer: u64, bytes: Vec<u8>) -> Result<(), Error> {
        let mut st = self.lock();
        let process = self.terminal_process(&st)?;
        if let Some(size) = st.terminal.as_mut().and_then(|t| t.driver.typed(viewer)) {
            self.set_terminal_size(&mut st, &process, size);
        }
        drop(st);
        match process.write_stdin(bytes) {
            Ok(()) => Ok(()),
            Err(StdinError::Full) => Err(Error::unavailable(
                ErrorCode::InputFull,
                format!(
                    "{} is not reading its terminal and 8 MiB of input already wait; this input was dropped",
                    self.display_name()
                ),
            )),
            Err(StdinError::Disconnected) => Err(self.unreachable()),
            Err(StdinError::Closed) => Err(self.not_running()),
        }
    }

    /// `viewer`'s window is `size`: the terminal takes it if `viewer` drives it.
    pub fn terminal_resize(&self, viewer: u64, size: TerminalSize) -> Result<(), Error> {
        let mut st = self.lock();
        let process = self.terminal_process(&st)?;
        if let Some(size) = st
            .terminal
            .as_mut()
            .and_then(|t| t.driver.viewer_size(viewer, size))
        {
            self.set_terminal_size(&mut st, &process, size);
        }
        Ok(())
    }

    /// `viewer` is gone: it no longer decides the size.
    pub fn terminal_viewer_left(&self, viewer: u64) {
        if let Some(terminal) = self.lock().terminal.as_mut() {
            terminal.driver.left(viewer);
        }
    }

    fn terminal_process(&self, st: &WorkerState) -> Result<Arc<Process>, Error> {
        if st.terminal.is_none() {
            return Err(Error::invalid(format!(
                "{} has no terminal: send it a `message`",
                self.display_name()
            ))
            .with_code(ErrorCode::BadMessage));
        }
        st.process
            .clone()
            .filter(|p| p.is_running())
            .ok_or_else(|| self.not_running())
    }

    fn not_running(&self) -> Error {
        Error::conflict(
            ErrorCode::WorkerNotRunning,
            format!(
                "{} is not running; restart it to type into it",
                self.display_name()
            ),
        )
    }

    /// Sizes the terminal (the program gets SIGWINCH) and the screen, and tells every
    /// viewer with a `terminal_resize` event.
    fn set_terminal_size(&self, st: &mut WorkerState, process: &Process, size: TerminalSize) {
        let Some(terminal) = st.terminal.as_mut() else {
            return;
        };
        if terminal.screen.size() == size {
            return;
        }
        if let Err(err) = process.resize_terminal(size) {
            log::warn!("worker {}: could not resize its terminal: {err}", self.id);
            return;
        }
        terminal.screen.resize(size);
        self.feed.publish(&[Event::TerminalResize(size)]);
    }
}
