//! A workerhub whose hosts file names a real OpenSSH server this test starts
//! (`local-ssh`, on a loopback port, as a user's `~/.ssh/config` names it; its `path`
//! holds the installed AI CLIs), a host that is down (`down`) and an entry that cannot
//! be used (`bad`). Every worker is deleted when it is dropped, so no spool stays on the
//! host.

use std::path::{Path, PathBuf};

use serde_json::json;

use super::TempDir;
use super::server::Workerhub;
use super::sshd::Sshd;

pub struct Remote {
    pub hub: Workerhub,
    pub sshd: Sshd,
    pub tmp: TempDir,
}

impl Remote {
    /// Starts it (`extra_args` for the server), or says why it cannot and gives None.
    pub fn start(prefix: &str, extra_args: &[&str]) -> Option<Remote> {
        let tmp = TempDir::new(prefix).unwrap();
        let sshd = match Sshd::start(tmp.path(), &["local-ssh"]) {
            Ok(sshd) => sshd,
            Err(why) => {
                println!("skipped: {why}");
                return None;
            }
        };
        let down_port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let clis = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/clis/node_modules/.bin");
        let hosts = json!({
            "local-ssh": {"ssh": "local-ssh", "config_file": sshd.home.join(".ssh/config"), "path": [clis]},
            "down": {"ssh": "root@127.0.0.1", "port": down_port, "options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null", "ConnectTimeout=3"]},
            "bad": {"ssh": "-oProxyCommand=touch /tmp/pwned"},
        });
        let file = tmp.path().join("hosts.json");
        std::fs::write(&file, hosts.to_string()).unwrap();
        let mut args = vec!["--hosts", file.to_str().unwrap()];
        args.extend_from_slice(extra_args);
        let hub = Workerhub::start_in(&tmp.path().join("data"), &args);
        Some(Remote { hub, sshd, tmp })
    }

    /// Starts the server again on the same data folder and hosts file.
    pub fn restart_hub(&mut self) {
        let hosts = self.tmp.path().join("hosts.json").display().to_string();
        self.hub = Workerhub::start_in(&self.tmp.path().join("data"), &["--hosts", &hosts]);
    }

    /// A project folder (the host is this machine: its folders are here too).
    pub fn project(&self) -> PathBuf {
        self.tmp.subdir("project").unwrap()
    }

    /// A `command` worker on `local-ssh` in the project folder.
    pub fn worker(&self, command: &[&str]) -> String {
        self.hub.create_worker(json!({
            "host": "local-ssh",
            "project_path": self.project(),
            "command": command,
        }))
    }

    /// The worker's spools on the host (`$HOME/.cache/workerhub/SERVER/WORKER`, the
    /// test sshd's sessions having a `HOME` of their own).
    pub fn spools(&self, id: &str) -> Vec<PathBuf> {
        let base = self.sshd.home.join(".cache/workerhub");
        let mut found = Vec::new();
        for server in std::fs::read_dir(&base).into_iter().flatten().flatten() {
            let spool = server.path().join(id);
            if spool.exists() {
                found.push(spool);
            }
        }
        found
    }
}

impl Drop for Remote {
    fn drop(&mut self) {
        let list = self.hub.get("/api/workers").json();
        for worker in list["workers"].as_array().into_iter().flatten() {
            if let Some(id) = worker["id"].as_str() {
                self.hub.delete(&format!("/api/workers/{id}"));
            }
        }
    }
}

/// Every process whose process group is `pgid`.
pub fn group_members(pgid: u64) -> Vec<String> {
    let out = std::process::Command::new("ps")
        .args(["-eo", "pgid=,pid=,args="])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| l.split_whitespace().next() == Some(&pgid.to_string()))
        .map(str::to_string)
        .collect()
}
