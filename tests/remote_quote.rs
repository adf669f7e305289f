//! The remote command line's quoting, checked against a real POSIX shell: any argument
//! (quotes, `$`, `;`, backquotes, newlines, a leading `-`, any Unicode) reaches the
//! program as one argument, byte for byte.

use std::process::Command;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use workerhub::hosts::quote::join;

/// What `sh` gives a program for the command line: each argument NUL-terminated.
fn through_sh(args: &[String]) -> Vec<String> {
    let line = format!("printf '%s\\0' {}", join(args).expect("quotable"));
    let out = Command::new("sh")
        .arg("-c")
        .arg(&line)
        .output()
        .expect("sh runs");
    assert!(
        out.status.success(),
        "{line}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8 back");
    let mut words: Vec<String> = text.split('\0').map(str::to_string).collect();
    words.pop();
    words
}

#[test]
fn the_words_a_user_would_fear_arrive_unchanged() {
    let args: Vec<String> = [
        "'; rm -rf ~ #",
        "--help",
        "-",
        "",
        "a b\tc\nd",
        "$(id) `id` ${HOME} $HOME",
        "\"double\" 'single' \\back\\",
        "*?[a-z]~",
        "é ✓ 日本",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(through_sh(&args), args);
}

#[test]
fn any_argument_arrives_unchanged() {
    let cases = std::env::var("QUOTE_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(300);
    let mut runner = TestRunner::new(Config {
        cases,
        ..Config::default()
    });
    let arg = prop::collection::vec(any::<char>().prop_filter("no NUL", |c| *c != '\0'), 0..40)
        .prop_map(|chars| chars.into_iter().collect::<String>());
    runner
        .run(&prop::collection::vec(arg, 1..5), |args| {
            prop_assert_eq!(through_sh(&args), args);
            Ok(())
        })
        .unwrap();
}
