//! A real OpenSSH server for a test, on a free loopback port, with its own host key and
//! an authorized client key, and a `HOME` whose `.ssh/config` names it as a user's would
//! (`../shared/TEST-HOSTS.md`). Stopped when dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    /// A HOME holding `.ssh/config` with `Host NAME` entries for this server.
    pub home: PathBuf,
    child: Child,
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
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {}\nAuthorizedKeysFile {}\nPermitRootLogin prohibit-password\nPasswordAuthentication no\nStrictModes no\nPidFile {}\n",
            dir.join("hk").display(),
            dir.join("authorized_keys").display(),
            dir.join("sshd.pid").display()
        );
        std::fs::write(dir.join("sshd_config"), config).map_err(|e| e.to_string())?;
        let child = Command::new(sshd)
            .args(["-D", "-f"])
            .arg(dir.join("sshd_config"))
            .arg("-E")
            .arg(dir.join("sshd.log"))
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("sshd: {e}"))?;
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
        let sshd = Sshd { port, home, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                return Err("sshd did not listen within 10 s".into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sshd)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
