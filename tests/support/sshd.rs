//! A real OpenSSH server for a test, on a free loopback port, with its own host key and
//! an authorized client key, and a `HOME` whose `.ssh/config` names it as a user's would
//! (`../shared/TEST-HOSTS.md`). Stopped when dropped.
//!
//! Its sessions get that `HOME` too (`SetEnv`): what runs "on the host" keeps its files
//! there (a remote worker's spool), and the machine user's own shell start-up files
//! (a `.bashrc` that runs `pyenv rehash`, which can wait a minute on a lock a killed
//! session left) play no part in the tests.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    /// A HOME holding `.ssh/config` with `Host NAME` entries for this server.
    pub home: PathBuf,
    child: Child,
    dir: PathBuf,
}

impl Sshd {
    /// Starts sshd under `dir`, or says why it cannot (no sshd, not root).
    pub fn start(dir: &Path, names: &[&str]) -> Result<Sshd, String> {
        let sshd = Path::new("/usr/sbin/sshd");
        if !sshd.exists() {
            return Err("no /usr/sbin/sshd (openssh-server)".into());
        }
        if unsafe { libc::getuid() } != 0 {
            return Err("sshd's privilege separation needs root here".into());
        }
        std::fs::create_dir_all("/run/sshd").map_err(|e| format!("/run/sshd: {e}"))?;
        for key in ["hk", "id"] {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(dir.join(key))
                .output()
                .map_err(|e| format!("ssh-keygen: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "ssh-keygen: {}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        std::fs::copy(dir.join("id.pub"), dir.join("authorized_keys"))
            .map_err(|e| e.to_string())?;
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(|e| e.to_string())?
            .port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\nPidFile {}\nSetEnv HOME={}\n",
            dir.join("hk").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display(),
            dir.join("home").display()
        );
        std::fs::write(dir.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let child = spawn_sshd(dir)?;
        let home = dir.join("home");
        std::fs::create_dir_all(home.join(".ssh")).map_err(|e| e.to_string())?;
        let mut client = String::new();
        for name in names {
            client.push_str(&format!(
                "Host {name}\n  HostName 127.0.0.1\n  Port {port}\n  User root\n  IdentityFile {}\n  StrictHostKeyChecking no\n  UserKnownHostsFile /dev/null\n  LogLevel ERROR\n",
                dir.join("id").display()
            ));
        }
        std::fs::write(home.join(".ssh/config"), client).map_err(|e| e.to_string())?;
        let sshd = Sshd {
            port,
            home,
            child,
            dir: dir.to_path_buf(),
        };
        sshd.wait_listening()?;
        Ok(sshd)
    }

    fn wait_listening(&self) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() > deadline {
                return Err("sshd did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// Stops the server, and every session it serves (the host "goes down").
    pub fn stop(&mut self) {
        // Its sessions first, found as its descendants while they still are.
        for pid in descendants(self.child.id() as i32) {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts it again on the same port (the host "comes back").
    pub fn restart(&mut self) -> Result<(), String> {
        self.child = spawn_sshd(&self.dir)?;
        self.wait_listening()
    }
}

fn spawn_sshd(dir: &Path) -> Result<Child, String> {
    Command::new("/usr/sbin/sshd")
        .args(["-D", "-f"])
        .arg(dir.join("sshd_config"))
        .arg("-E")
        .arg(dir.join("sshd.log"))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("sshd: {e}"))
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every process below `root`, by the parent ids in /proc.
fn descendants(root: i32) -> Vec<i32> {
    let mut parents: Vec<(i32, i32)> = Vec::new();
    if let Ok(entries) = std::fs::read_dir("/proc") {
        for entry in entries.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
                continue;
            };
            let after = stat.rsplit(')').next().unwrap_or("");
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
                parents.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        i += 1;
    }
    found.remove(0);
    found
}
