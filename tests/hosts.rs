//! Hosts over the user's own OpenSSH, against a real sshd this test starts: the hosts
//! file's entries (a bad one is listed with why, the rest work), and a check that finds
//! the host reachable, its OS, and which AI CLIs answer there; a host that is down is
//! reported unreachable within the check's bound.

mod support;

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};
use support::TempDir;
use support::server::Workerhub;
use support::sshd::Sshd;

fn host<'a>(list: &'a Value, name: &str) -> &'a Value {
    list["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == name)
        .unwrap_or_else(|| panic!("no host {name}: {list}"))
}

#[test]
fn hosts_are_listed_checked_over_ssh_and_a_bad_entry_does_not_stop_the_rest() {
    let tmp = TempDir::new("wh-hosts").unwrap();
    let sshd = match Sshd::start(tmp.path(), &["local-ssh"]) {
        Ok(sshd) => sshd,
        Err(why) => {
            println!("skipped: {why}");
            return;
        }
    };
    // A "CLI" on the remote side, found through the host's PATH additions.
    let bin = tmp.subdir("remote-bin").unwrap();
    let claude = bin.join("claude");
    std::fs::write(&claude, "#!/bin/sh\necho '9.9.9 (Claude Code)'\n").unwrap();
    std::fs::set_permissions(&claude, std::fs::Permissions::from_mode(0o755)).unwrap();
    // A port nothing listens on, for a host that is down.
    let down_port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let hosts = json!({
        "local-ssh": {"ssh": "local-ssh", "path": [bin], "config_file": sshd.home.join(".ssh/config")},
        "down": {"ssh": "root@127.0.0.1", "port": down_port, "options": ["StrictHostKeyChecking=no", "UserKnownHostsFile=/dev/null"]},
        "sneaky": {"ssh": "-oProxyCommand=touch /tmp/pwned"},
    });
    let file = tmp.path().join("hosts.json");
    std::fs::write(&file, hosts.to_string()).unwrap();
    let hub = Workerhub::start_in(
        &tmp.path().join("data"),
        &["--hosts", file.to_str().unwrap()],
    );

    let list = hub.get("/api/hosts").json();
    assert_eq!(host(&list, "local-ssh")["state"], "unknown", "{list}");
    let sneaky = host(&list, "sneaky");
    assert_eq!(sneaky["state"], "invalid");
    assert!(
        sneaky["error"]
            .as_str()
            .unwrap()
            .contains("not a destination"),
        "{sneaky}"
    );
    let refused = hub.post_json("/api/hosts/sneaky/check", &json!({}));
    assert_eq!(refused.status, 400, "{}", refused.text());

    let checked = hub.post_json("/api/hosts/local-ssh/check", &json!({}));
    assert_eq!(checked.status, 200, "{}", checked.text());
    let checked = checked.json();
    assert_eq!(checked["state"], "reachable", "{checked}");
    assert!(
        checked["os"].as_str().unwrap().starts_with("Linux"),
        "{checked}"
    );
    assert_eq!(
        checked["clis"]["claude"], "9.9.9 (Claude Code)",
        "{checked}"
    );
    assert_eq!(checked["clis"]["gemini"], Value::Null, "{checked}");
    assert!(checked["latency_ms"].is_u64());
    assert_eq!(
        host(&hub.get("/api/hosts").json(), "local-ssh")["state"],
        "reachable"
    );

    let down = hub.post_json("/api/hosts/down/check", &json!({})).json();
    assert_eq!(down["state"], "unreachable", "{down}");
    assert!(!down["error"].as_str().unwrap_or("").is_empty(), "{down}");
    assert_eq!(
        hub.post_json("/api/hosts/nope/check", &json!({})).status,
        404
    );
    assert!(!std::path::Path::new("/tmp/pwned").exists());

    // The multiplexed connection outlives each ssh, not the server.
    let masters = || {
        let out = std::process::Command::new("ps")
            .args(["-eo", "args"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| {
                l.starts_with("ssh: ") && l.contains("[mux]") && l.contains("workerhub-ssh")
            })
            .count()
    };
    assert!(masters() > 0, "a control master serves the host");
    let mut hub = hub;
    hub.stop_with(libc::SIGTERM, std::time::Duration::from_secs(10));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while masters() > 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert_eq!(masters(), 0, "the control master ended with the server");
}
