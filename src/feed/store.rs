//! A worker's history on disk: append-only JSON-lines segment files named by the first
//! seq they hold (`00000000000000000001.jsonl`), oldest dropped past a size limit.
//!
//! Lines are written by the feed before the event is shown to anyone; readers (replay,
//! paging) read segments without the feed's lock, only below the in-memory window, so
//! they never see a line that is still being written.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::event::{EventBatch, Published, seq_of_line};

#[derive(Clone, Copy, Debug)]
pub struct StoreLimits {
    /// Start a new segment once the current one holds this many bytes.
    pub segment_bytes: u64,
    /// Drop the oldest segments while the history is larger than this.
    pub max_bytes: u64,
}

#[derive(Clone, Debug)]
pub struct Segment {
    pub first_seq: u64,
    pub path: PathBuf,
    pub bytes: u64,
}

pub struct Store {
    dir: PathBuf,
    segments: Vec<Segment>,
    active: Option<File>,
    limits: StoreLimits,
    /// Something was appended to `active` since it was last handed out for syncing.
    dirty: bool,
    /// Segments with appends not yet made durable, by path: a sync covers a file
    /// whichever descriptor wrote it, so they are synced by opening them again, and
    /// waiting for a sync holds no descriptor.
    unsynced: Vec<PathBuf>,
}

fn segment_name(first_seq: u64) -> String {
    format!("{first_seq:020}.jsonl")
}

/// Whether `line` (without its newline) is a complete history line.
fn is_whole_event(line: &[u8]) -> bool {
    seq_of_line(line).is_some() && serde_json::from_slice::<serde::de::IgnoredAny>(line).is_ok()
}

impl Store {
    /// Opens (creating) the history in `dir`. Returns the store and the last seq it
    /// holds (0 when empty). A torn last line, left by a crash in the middle of a write,
    /// is cut off with a warning; everything before it stays.
    pub fn open(dir: &Path, limits: StoreLimits) -> io::Result<(Store, u64)> {
        crate::private_files::create_dir(dir)?;
        let mut segments = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(first_seq) = name
                .to_str()
                .and_then(|n| n.strip_suffix(".jsonl"))
                .and_then(|n| n.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata()?.len();
            segments.push(Segment {
                first_seq,
                path: entry.path(),
                bytes,
            });
        }
        segments.sort_by_key(|s| s.first_seq);

        let mut last_seq = 0;
        // Find the last good event, walking back over segments that hold none.
        while let Some(seg) = segments.last_mut() {
            match repair_tail(&seg.path)? {
                (Some(seq), len) => {
                    seg.bytes = len;
                    last_seq = seq;
                    break;
                }
                (None, _) => {
                    log::warn!(
                        "history segment {} holds no complete event; removing it",
                        seg.path.display()
                    );
                    fs::remove_file(&seg.path)?;
                    segments.pop();
                }
            }
        }
        if let Some(first) = segments.first() {
            // A segment's name is the first seq it was opened for; seqs only grow.
            last_seq = last_seq.max(first.first_seq.saturating_sub(1));
        }
        Ok((
            Store {
                dir: dir.to_path_buf(),
                segments,
                active: None,
                limits,
                dirty: false,
                unsynced: Vec::new(),
            },
            last_seq,
        ))
    }

    /// Appends complete lines (each ending in a newline) whose first event is `first_seq`.
    pub fn append(&mut self, lines: &[u8], first_seq: u64) -> io::Result<()> {
        let full = self
            .segments
            .last()
            .is_none_or(|s| s.bytes >= self.limits.segment_bytes);
        if full {
            self.rotate(first_seq)?;
        } else if self.active.is_none()
            && let Some(seg) = self.segments.last()
        {
            // Closed while the feed was quiet (see `take_unsynced`): open it again.
            self.active = Some(crate::private_files::open_append(&seg.path)?);
        }
        let (Some(file), Some(seg)) = (self.active.as_mut(), self.segments.last_mut()) else {
            return Err(io::Error::other("history has no open segment"));
        };
        file.write_all(lines)?;
        seg.bytes += lines.len() as u64;
        self.dirty = true;
        Ok(())
    }

    fn rotate(&mut self, first_seq: u64) -> io::Result<()> {
        // Made durable with the next `take_unsynced`, not here: the caller holds its
        // feed's lock, and publishing must not wait for the disk.
        self.release();
        let path = self.dir.join(segment_name(first_seq));
        let file = crate::private_files::open_append(&path)?;
        self.segments.push(Segment {
            first_seq,
            path,
            bytes: 0,
        });
        self.active = Some(file);
        self.dirty = false;
        self.drop_oldest();
        Ok(())
    }

    fn drop_oldest(&mut self) {
        let mut total: u64 = self.segments.iter().map(|s| s.bytes).sum();
        while total > self.limits.max_bytes && self.segments.len() > 1 {
            let old = self.segments.remove(0);
            total -= old.bytes;
            if let Err(err) = fs::remove_file(&old.path) {
                log::warn!("could not drop old history {}: {err}", old.path.display());
            }
        }
    }

    /// The oldest seq still on disk, if any.
    pub fn first_seq(&self) -> Option<u64> {
        self.segments.first().map(|s| s.first_seq)
    }

    pub fn segments(&self) -> Vec<Segment> {
        self.segments.clone()
    }

    pub fn bytes(&self) -> u64 {
        self.segments.iter().map(|s| s.bytes).sum()
    }

    /// The files with appends not yet durable, to sync without holding the store.
    ///
    /// A store with nothing appended since the last call also closes its file: a quiet
    /// worker holds no descriptor, and the next append opens it again.
    pub fn take_unsynced(&mut self) -> Vec<PathBuf> {
        if !self.dirty {
            self.active = None;
        }
        self.release_dirty();
        std::mem::take(&mut self.unsynced)
    }

    /// Closes the file now (its worker's process ended), leaving what was appended to
    /// be synced: a stopped worker holds no descriptor.
    pub fn release(&mut self) {
        self.release_dirty();
        self.active = None;
    }

    fn release_dirty(&mut self) {
        if self.dirty
            && let Some(seg) = self.segments.last()
        {
            self.unsynced.push(seg.path.clone());
            self.dirty = false;
        }
    }
}

/// Reads a segment, cuts off a torn or corrupt tail, and returns the last good seq and
/// the file's resulting length.
fn repair_tail(path: &Path) -> io::Result<(Option<u64>, u64)> {
    let mut reader = BufReader::new(File::open(path)?);
    let mut line = Vec::new();
    let mut pos = 0u64;
    let mut good_end = 0u64;
    let mut last = None;
    let mut bad_tail = false;
    loop {
        line.clear();
        let n = reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            break;
        }
        pos += n as u64;
        let complete = line.last() == Some(&b'\n');
        let body = line.strip_suffix(b"\n").unwrap_or(&line);
        if complete && is_whole_event(body) {
            last = seq_of_line(body);
            good_end = pos;
            bad_tail = false;
        } else {
            bad_tail = true;
        }
    }
    if bad_tail {
        log::warn!(
            "history {}: the last line is incomplete or corrupt (a crash while writing?); skipping it",
            path.display()
        );
        OpenOptions::new()
            .write(true)
            .open(path)?
            .set_len(good_end)?;
        return Ok((last, good_end));
    }
    Ok((last, pos))
}

/// Where a replay left off in the history files, so the next chunk continues there
/// instead of searching again.
pub struct Cursor {
    segment_first: u64,
    reader: BufReader<File>,
    pos: u64,
    /// The seq the cursor is positioned after.
    after: u64,
}

/// Reads events with `after < seq < until`, at most `max` of them, from `segments`.
pub fn read_after(
    segments: &[Segment],
    after: u64,
    until: u64,
    cursor: &mut Option<Cursor>,
    max: usize,
) -> io::Result<Vec<Arc<Published>>> {
    let mut out = Vec::new();
    if cursor.as_ref().is_none_or(|c| c.after != after) {
        *cursor = None;
        // The segment holding `after + 1` is the last one that starts at or before it.
        let Some(seg) = segments
            .iter()
            .rev()
            .find(|s| s.first_seq <= after + 1)
            .or_else(|| segments.first())
        else {
            return Ok(out);
        };
        *cursor = Some(Cursor {
            segment_first: seg.first_seq,
            reader: BufReader::with_capacity(64 * 1024, File::open(&seg.path)?),
            pos: 0,
            after,
        });
    }
    let Some(cur) = cursor.as_mut() else {
        return Ok(out);
    };
    let mut line = Vec::new();
    let mut batch = EventBatch::with_capacity(max.min(1024), max.min(1024) * 160);
    let mut count = 0;
    while count < max {
        line.clear();
        let n = cur.reader.read_until(b'\n', &mut line)?;
        if n == 0 {
            // End of this segment: go on with the next one, if there is one.
            let Some(next) = segments.iter().find(|s| s.first_seq > cur.segment_first) else {
                break;
            };
            cur.segment_first = next.first_seq;
            cur.reader = BufReader::with_capacity(64 * 1024, File::open(&next.path)?);
            cur.pos = 0;
            continue;
        }
        if line.last() != Some(&b'\n') {
            // A line still being written: leave it for the next call.
            cur.reader.seek(SeekFrom::Start(cur.pos))?;
            break;
        }
        cur.pos += n as u64;
        let body = &line[..line.len() - 1];
        let Some(seq) = seq_of_line(body) else {
            log::warn!("skipping a corrupt history line");
            continue;
        };
        if seq <= cur.after {
            continue;
        }
        if seq >= until {
            // The rest is in memory; this cursor's position is past a line not returned.
            *cursor = None;
            break;
        }
        cur.after = seq;
        batch.push_json(seq, body);
        count += 1;
    }
    out.extend(batch.finish());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Event, StatusEvent};

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("workerhub-store-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        dir
    }

    fn lines(from: u64, to: u64) -> Vec<u8> {
        let mut out = Vec::new();
        for seq in from..=to {
            let mut status = StatusEvent::new(crate::event::Status::Running);
            status.pid = Some(seq as u32);
            Event::Status(status).write_json(seq, "T", &mut out);
            out.push(b'\n');
        }
        out
    }

    const LIMITS: StoreLimits = StoreLimits {
        segment_bytes: 1000,
        max_bytes: 1_000_000,
    };

    #[test]
    fn reopening_finds_the_last_seq_and_cuts_a_torn_line() {
        let dir = temp_dir("torn");
        let (mut store, last) = Store::open(&dir, LIMITS).unwrap();
        assert_eq!(last, 0);
        store.append(&lines(1, 5), 1).unwrap();
        drop(store);
        let seg = dir.join(segment_name(1));
        let mut f = OpenOptions::new().append(true).open(&seg).unwrap();
        f.write_all(b"{\"seq\":6,\"type\":\"out").unwrap();
        let (store, last) = Store::open(&dir, LIMITS).unwrap();
        assert_eq!(last, 5);
        assert!(fs::read(&seg).unwrap().ends_with(b"}\n"));
        drop(store);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn reads_across_segments_and_drops_the_oldest_past_the_limit() {
        let dir = temp_dir("segments");
        let limits = StoreLimits {
            segment_bytes: 200,
            max_bytes: 2000,
        };
        let (mut store, _) = Store::open(&dir, limits).unwrap();
        for seq in 1..=100 {
            store.append(&lines(seq, seq), seq).unwrap();
        }
        assert!(store.bytes() <= 2000 + 200);
        let first = store.first_seq().unwrap();
        assert!(first > 1);
        let mut cursor = None;
        let mut seen = Vec::new();
        let mut after = first - 1;
        loop {
            let got = read_after(&store.segments(), after, 101, &mut cursor, 7).unwrap();
            if got.is_empty() {
                break;
            }
            after = got.last().unwrap().seq;
            seen.extend(got.iter().map(|e| e.seq));
        }
        assert_eq!(seen, (first..=100).collect::<Vec<_>>());
        fs::remove_dir_all(&dir).unwrap();
    }
}
