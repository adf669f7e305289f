//! What the server costs, read from /proc: resident memory, threads, CPU time, for the
//! server process alone and for its whole process tree (websocketd and the reference
//! run one child per connection).

use std::collections::HashMap;

/// One process's figures.
#[derive(Clone, Copy, Debug, Default)]
pub struct Proc {
    pub rss_kb: u64,
    pub threads: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
}

/// Figures of a process and its descendants.
#[derive(Clone, Debug, Default)]
pub struct Tree {
    pub root: Proc,
    pub procs: usize,
    pub threads: u64,
    /// Sum of proportional set sizes (shared pages divided among their users).
    pub pss_kb: u64,
    /// CPU ticks by pid, to diff two snapshots.
    pub cpu: HashMap<i32, u64>,
}

pub fn read(pid: i32) -> Option<Proc> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let (_, ticks) = stat(pid)?;
    Some(Proc {
        rss_kb: field("VmRSS:"),
        threads: field("Threads:"),
        cpu_ticks: ticks,
    })
}

/// (ppid, utime + stime) from /proc/PID/stat.
fn stat(pid: i32) -> Option<(i32, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name is in parentheses and may hold spaces: parse after the last ')'.
    let rest = &text[text.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, utime 14, stime 15.
    let ppid = fields.get(1)?.parse().ok()?;
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((ppid, utime + stime))
}

fn pss_kb(pid: i32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|t| {
            t.lines()
                .find_map(|l| l.strip_prefix("Pss:"))
                .and_then(|v| v.split_whitespace().next())
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `pid` and all its descendants.
pub fn descendants(pid: i32) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    if let Ok(dir) = std::fs::read_dir("/proc") {
        for entry in dir.flatten() {
            let Some(p) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some((ppid, _)) = stat(p) {
                children.entry(ppid).or_default().push(p);
            }
        }
    }
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        if let Some(kids) = children.get(&out[i]) {
            out.extend(kids.iter().copied());
        }
        i += 1;
    }
    out
}

/// The tree rooted at `pid`; `with_pss` also reads every process's PSS (slower).
pub fn tree(pid: i32, with_pss: bool) -> Option<Tree> {
    let root = read(pid)?;
    let mut tree = Tree {
        root,
        ..Tree::default()
    };
    for p in descendants(pid) {
        let Some(proc_) = read(p) else { continue };
        tree.procs += 1;
        tree.threads += proc_.threads;
        tree.cpu.insert(p, proc_.cpu_ticks);
        if with_pss {
            tree.pss_kb += pss_kb(p);
        }
    }
    Some(tree)
}

/// CPU ticks the tree used between two snapshots (processes present in both).
pub fn cpu_ticks_between(before: &Tree, after: &Tree) -> u64 {
    after
        .cpu
        .iter()
        .map(|(pid, t)| t.saturating_sub(*before.cpu.get(pid).unwrap_or(t)))
        .sum()
}
