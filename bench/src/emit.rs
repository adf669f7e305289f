//! `emit`: the program the stream and fanout scenarios run (as workerhub's worker, as
//! websocketd's program, as the reference's child). It waits for a `go` line on stdin
//! (so that it starts only once every client is connected), then prints N lines
//! `SEQ TIMESTAMP` as fast as it can, TIMESTAMP being CLOCK_REALTIME in microseconds
//! (the receiver is another process), written in 64 KiB chunks.

use std::io::{self, BufRead};
use std::time::{Duration, Instant};

use crate::sys;

#[derive(clap::Args, Debug)]
pub struct EmitArgs {
    /// How many lines to print.
    #[arg(long, default_value_t = 1000)]
    pub lines: u64,
    /// Wait for a line `go` on stdin before printing (EOF before it: exit without output).
    #[arg(long)]
    pub wait_go: bool,
    /// Lines per second (0: as fast as possible). Paced lines are written every tick,
    /// each stamped when written.
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// The pacing tick in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub tick_ms: u64,
}

const CHUNK: usize = 64 * 1024;

pub fn run(args: &EmitArgs) -> Result<(), String> {
    if args.wait_go {
        let stdin = io::stdin();
        let mut line = String::new();
        loop {
            line.clear();
            match stdin.lock().read_line(&mut line) {
                Ok(0) => return Ok(()),
                Ok(_) if line.trim() == "go" => break,
                Ok(_) => {}
                Err(e) => return Err(format!("reading stdin: {e}")),
            }
        }
    }
    if args.rate > 0 {
        return paced(args);
    }
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64);
    let mut stamp = sys::realtime_micros();
    for seq in 1..=args.lines {
        if seq % 256 == 0 {
            // Reading the clock once per 256 lines keeps the stamp within a few
            // microseconds of the truth at a fraction of the cost.
            stamp = sys::realtime_micros();
        }
        push_line(&mut buf, seq, stamp);
        if buf.len() >= CHUNK {
            write_all(&buf)?;
            buf.clear();
        }
    }
    if !buf.is_empty() {
        write_all(&buf)?;
    }
    Ok(())
}

/// Every tick, writes the lines that are due by then.
fn paced(args: &EmitArgs) -> Result<(), String> {
    let tick = Duration::from_millis(args.tick_ms.max(1));
    let start = Instant::now();
    let mut buf: Vec<u8> = Vec::with_capacity(CHUNK + 64);
    let mut next = 1u64;
    let mut ticks = 0u32;
    while next <= args.lines {
        let due = ((start.elapsed().as_secs_f64() * args.rate as f64) as u64 + 1).min(args.lines);
        if due >= next {
            let stamp = sys::realtime_micros();
            for seq in next..=due {
                push_line(&mut buf, seq, stamp);
                if buf.len() >= CHUNK {
                    write_all(&buf)?;
                    buf.clear();
                }
            }
            if !buf.is_empty() {
                write_all(&buf)?;
                buf.clear();
            }
            next = due + 1;
        }
        ticks += 1;
        let wake = start + tick * ticks;
        let now = Instant::now();
        if wake > now {
            std::thread::sleep(wake - now);
        }
    }
    Ok(())
}

fn push_line(buf: &mut Vec<u8>, seq: u64, stamp: u64) {
    push_u64(buf, seq);
    buf.push(b' ');
    push_u64(buf, stamp);
    buf.push(b'\n');
}

fn push_u64(buf: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    buf.extend_from_slice(&digits[i..]);
}

/// Writes straight to descriptor 1 (std's stdout is line-buffered: one syscall per line).
fn write_all(mut data: &[u8]) -> Result<(), String> {
    while !data.is_empty() {
        // SAFETY: writes from a valid, initialized slice to descriptor 1.
        let n = unsafe { libc::write(1, data.as_ptr().cast(), data.len()) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            // EPIPE: the reader is gone; nothing more to do.
            return Err(format!("writing stdout: {err}"));
        }
        data = &data[n as usize..];
    }
    Ok(())
}
