//! The few operating-system calls std does not offer: process groups and `waitid`,
//! `poll`, `epoll`, `eventfd`, non-blocking `sendmsg`, descriptor limits, dying with the
//! parent, and what /proc says of processes.
//!
//! Every `unsafe` block of the crate lives here, each with the reason it is sound.

use std::io::{self, IoSlice};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

fn check(ret: libc::c_int) -> io::Result<libc::c_int> {
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// Raises the soft limit on open descriptors to the hard limit: each WebSocket holds
/// one descriptor, and the default soft limit is often far below what the machine allows.
pub fn raise_fd_limit() -> u64 {
    // SAFETY: getrlimit/setrlimit write to and read from a local, fully initialized struct.
    unsafe {
        let mut lim = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return raised.rlim_cur;
            }
        }
        lim.rlim_cur
    }
}

/// Sets the receive and send timeouts of a listening socket; on Linux the sockets it
/// accepts inherit them.
pub fn set_socket_timeouts(listener: &std::net::TcpListener, timeout: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        tv_sec: timeout.as_secs() as libc::time_t,
        tv_usec: timeout.subsec_micros() as libc::suseconds_t,
    };
    for option in [libc::SO_RCVTIMEO, libc::SO_SNDTIMEO] {
        // SAFETY: setsockopt reads a timeval from a local for the duration of the call.
        check(unsafe {
            libc::setsockopt(
                listener.as_raw_fd(),
                libc::SOL_SOCKET,
                option,
                &tv as *const libc::timeval as *const libc::c_void,
                std::mem::size_of::<libc::timeval>() as libc::socklen_t,
            )
        })?;
    }
    Ok(())
}

pub fn set_nonblocking(fd: RawFd, on: bool) -> io::Result<()> {
    // SAFETY: plain fcntl flag calls on a descriptor the caller holds.
    unsafe {
        let flags = check(libc::fcntl(fd, libc::F_GETFL))?;
        let flags = if on {
            flags | libc::O_NONBLOCK
        } else {
            flags & !libc::O_NONBLOCK
        };
        check(libc::fcntl(fd, libc::F_SETFL, flags))?;
    }
    Ok(())
}

/// Sends as much of `bufs` as the socket takes now, without blocking and without SIGPIPE.
pub fn send_now(fd: RawFd, bufs: &[IoSlice<'_>]) -> io::Result<usize> {
    // SAFETY: msghdr points at `bufs`, which outlives the call; IoSlice is ABI
    // compatible with iovec.
    unsafe {
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = bufs.as_ptr() as *mut libc::iovec;
        msg.msg_iovlen = bufs.len().min(libc::UIO_MAXIOV as usize) as _;
        let n = libc::sendmsg(fd, &msg, libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL);
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// An eventfd: a counter one thread can bump to wake another that waits on it.
pub struct EventFd(OwnedFd);

impl EventFd {
    pub fn new() -> io::Result<EventFd> {
        // SAFETY: eventfd returns a new descriptor or -1.
        let fd = check(unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) })?;
        // SAFETY: the descriptor is fresh and owned by no one else.
        Ok(EventFd(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn signal(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a local; failure (counter overflow) is harmless.
        unsafe {
            libc::write(
                self.0.as_raw_fd(),
                &one as *const u64 as *const libc::c_void,
                8,
            );
        }
    }

    pub fn fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// Waits until `fd` is readable or `wake` was signalled (or `timeout` passes).
/// Returns true when `fd` is readable (or hung up).
pub fn wait_readable(fd: RawFd, wake: &EventFd, timeout: Option<Duration>) -> io::Result<bool> {
    wait_ready(fd, libc::POLLIN, wake, timeout)
}

/// Waits until `fd` takes writes (or its reader is gone) or `wake` was signalled (or
/// `timeout` passes). Returns true when `fd` is ready.
pub fn wait_writable(fd: RawFd, wake: &EventFd, timeout: Option<Duration>) -> io::Result<bool> {
    wait_ready(fd, libc::POLLOUT, wake, timeout)
}

fn wait_ready(
    fd: RawFd,
    events: libc::c_short,
    wake: &EventFd,
    timeout: Option<Duration>,
) -> io::Result<bool> {
    let mut fds = [
        libc::pollfd {
            fd,
            events,
            revents: 0,
        },
        libc::pollfd {
            fd: wake.fd(),
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
    loop {
        // SAFETY: `fds` is a valid array of two pollfd for the duration of the call.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            if err.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(err);
        }
        return Ok(fds[0].revents != 0);
    }
}

/// A minimal epoll instance: descriptors carry a u64 token.
pub struct Epoll(OwnedFd);

pub const EPOLL_OUT_EDGE: u32 = (libc::EPOLLOUT | libc::EPOLLET) as u32;
pub const EPOLL_IN: u32 = libc::EPOLLIN as u32;

impl Epoll {
    pub fn new() -> io::Result<Epoll> {
        // SAFETY: epoll_create1 returns a new descriptor or -1.
        let fd = check(unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) })?;
        // SAFETY: fresh descriptor, owned by no one else.
        Ok(Epoll(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    pub fn add(&self, fd: RawFd, token: u64, events: u32) -> io::Result<()> {
        let mut ev = libc::epoll_event { events, u64: token };
        // SAFETY: `ev` is a valid epoll_event for the call.
        check(unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut ev) })?;
        Ok(())
    }

    pub fn delete(&self, fd: RawFd) {
        let mut ev = libc::epoll_event { events: 0, u64: 0 };
        // SAFETY: as above; a failure (already gone) is harmless.
        unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_DEL, fd, &mut ev) };
    }

    /// Waits for events and returns their tokens.
    pub fn wait(&self, tokens: &mut Vec<u64>, timeout: Option<Duration>) -> io::Result<()> {
        let mut events = [libc::epoll_event { events: 0, u64: 0 }; 256];
        let ms = timeout.map_or(-1, |t| t.as_millis().min(i32::MAX as u128) as libc::c_int);
        tokens.clear();
        // SAFETY: `events` is a valid buffer of 256 entries for the call.
        let n = unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), 256, ms) };
        if n < 0 {
            let err = io::Error::last_os_error();
            return if err.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(err)
            };
        }
        tokens.extend(events[..n as usize].iter().map(|e| e.u64));
        Ok(())
    }
}

/// Makes `command`'s child get SIGKILL when the thread that spawns it (one long-lived
/// thread: `process::launcher`) goes away with the server, and exit at once if the
/// server is already gone by the time it starts.
pub fn die_with_parent(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: getpid is async-signal-safe and runs before the fork.
    let parent = unsafe { libc::getpid() };
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (prctl, getppid, _exit); it allocates nothing.
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL, 0, 0, 0) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent died between the fork and the prctl: the signal will never
            // come, so go now.
            if libc::getppid() != parent {
                libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Makes `command`'s child the leader of a new session whose controlling terminal is
/// its stdin, as `login_tty` does: for a child whose stdin is a pseudo-terminal's slave.
/// Its process group is then its own (the session's), as with `process_group(0)`, which
/// must not be set as well (a group leader cannot start a session).
pub fn new_session_on_terminal(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the child between fork and exec and calls only
    // async-signal-safe functions (setsid, ioctl); it allocates nothing (an OS error is
    // a plain code).
    unsafe {
        command.pre_exec(|| {
            if libc::setsid() < 0 {
                return Err(io::Error::last_os_error());
            }
            if libc::ioctl(0, libc::TIOCSCTTY, 0) < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Sends `signal` to every process of session `sid` (from /proc): a terminal's shell
/// puts each job in a process group of its own, so ending the leader's group is not
/// enough. The caller holds the leader unreaped (or knows the session is its own), so
/// the number names no one else's session.
pub fn kill_session(sid: u32, signal: libc::c_int) -> usize {
    if sid <= 1 {
        return 0;
    }
    session_members(sid)
        .into_iter()
        .filter(|&pid| signal_process(pid, signal))
        .count()
}

/// The processes of session `sid` (`/proc/PID/stat`, field 6).
pub fn session_members(sid: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut members = Vec::new();
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
            continue;
        };
        let session = stat
            .rfind(')')
            .and_then(|end| stat[end + 1..].split_whitespace().nth(3))
            .and_then(|s| s.parse::<u32>().ok());
        if session == Some(sid) {
            members.push(pid);
        }
    }
    members
}

/// When process `pid` started, in clock ticks since boot (`/proc/PID/stat`, field 22):
/// with the pid, it names one process for good (a pid is reused, a pair is not).
pub fn process_start_time(pid: u32) -> Option<u64> {
    proc_stat(pid).map(|(_, start)| start)
}

/// A process's group and start time from `/proc/PID/stat`.
fn proc_stat(pid: u32) -> Option<(u32, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: fields are
    // counted from after its closing parenthesis (field 3 is the first one there).
    let after = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = after.split_whitespace().collect();
    let pgrp = fields.get(2)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((pgrp, start))
}

/// Whether process group `pgid`, whose leader started at `leader_start` (ticks since
/// boot), still has members: the very group, never another one that reuses the number.
///
/// A pid is not given out again while a process group still uses it as its id, so: if
/// the leader is alive with that start time, the group is ours; if no process has that
/// pid but some are in group `pgid`, the leader died and they are its group's; if a
/// process with that pid started at another time, the number was reused and the group
/// is someone else's.
pub fn group_is_alive(pgid: u32, leader_start: u64) -> bool {
    match proc_stat(pgid) {
        Some((_, start)) => start == leader_start && group_alive(pgid),
        None => group_alive(pgid),
    }
}

/// Sends `signal` to every process of the group `pgid`.
pub fn kill_group(pgid: u32, signal: libc::c_int) -> bool {
    if pgid <= 1 {
        return false;
    }
    // SAFETY: kill has no memory effects; a negative pid addresses a process group.
    unsafe { libc::kill(-(pgid as libc::pid_t), signal) == 0 }
}

/// Sends `signal` to one process.
pub fn signal_process(pid: u32, signal: libc::c_int) -> bool {
    if pid <= 1 {
        return false;
    }
    // SAFETY: kill has no memory effects.
    unsafe { libc::kill(pid as libc::pid_t, signal) == 0 }
}

/// Whether any process of group `pgid` still exists.
pub fn group_alive(pgid: u32) -> bool {
    kill_group(pgid, 0)
}

/// Blocks until child `pid` has exited, without reaping it: while it is a zombie its
/// pid, and so its process group id, cannot be reused, so the group can still be
/// signalled safely. The caller reaps it afterwards (std's `Child::wait`).
pub fn wait_exit_keep_zombie(pid: u32) -> io::Result<()> {
    loop {
        // SAFETY: waitid writes into a zeroed local siginfo_t.
        let ret = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(
                libc::P_PID,
                pid as libc::id_t,
                &mut info,
                libc::WEXITED | libc::WNOWAIT,
            )
        };
        if ret == 0 {
            return Ok(());
        }
        let err = io::Error::last_os_error();
        if err.kind() != io::ErrorKind::Interrupted {
            return Err(err);
        }
    }
}

/// The IP addresses of this machine's network interfaces (what a server bound to
/// 0.0.0.0 or [::] answers on).
pub fn local_addresses() -> Vec<std::net::IpAddr> {
    let mut out = Vec::new();
    let mut list: *mut libc::ifaddrs = std::ptr::null_mut();
    // SAFETY: getifaddrs fills `list` with a linked list that we only read and then
    // free with freeifaddrs; each node's address is checked for null and its family
    // before it is read as the matching sockaddr type.
    unsafe {
        if libc::getifaddrs(&mut list) != 0 {
            return out;
        }
        let mut node = list;
        while !node.is_null() {
            let addr = (*node).ifa_addr;
            if !addr.is_null() {
                match (*addr).sa_family as libc::c_int {
                    libc::AF_INET => {
                        let v4 = &*(addr as *const libc::sockaddr_in);
                        out.push(std::net::IpAddr::V4(std::net::Ipv4Addr::from(
                            u32::from_be(v4.sin_addr.s_addr),
                        )));
                    }
                    libc::AF_INET6 => {
                        let v6 = &*(addr as *const libc::sockaddr_in6);
                        out.push(std::net::IpAddr::V6(std::net::Ipv6Addr::from(
                            v6.sin6_addr.s6_addr,
                        )));
                    }
                    _ => {}
                }
            }
            node = (*node).ifa_next;
        }
        libc::freeifaddrs(list);
    }
    out
}

/// Resident set size of this process in bytes (from /proc/self/statm).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    // SAFETY: sysconf has no memory effects.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) }.max(1) as u64;
    pages * page
}

/// Number of threads of this process.
pub fn thread_count() -> u64 {
    std::fs::read_dir("/proc/self/task").map_or(0, |d| d.count() as u64)
}

/// Number of open descriptors of this process.
pub fn open_fd_count() -> u64 {
    std::fs::read_dir("/proc/self/fd").map_or(0, |d| d.count() as u64)
}

/// Sets an environment variable. Only sound while the process has a single thread, so
/// it is called from `main` before anything else starts.
pub fn set_env_before_threads(name: &str, value: &std::ffi::OsStr) {
    // SAFETY: called at startup, before any other thread exists, so nothing reads the
    // environment concurrently.
    unsafe { std::env::set_var(name, value) };
}

/// Returns free heap memory to the kernel (glibc keeps freed memory for reuse; after a
/// burst of connections or workers that can be megabytes). Cheap when there is nothing
/// to give back.
pub fn trim_heap() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
