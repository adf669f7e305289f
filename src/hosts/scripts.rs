//! The POSIX `sh` scripts a remote worker runs on its host, sent with each command
//! (nothing is installed there). Each takes its arguments as positional parameters,
//! quoted by `quote::join`, so no value ever becomes shell code.
//!
//! A worker's files on its host live in one folder, its spool,
//! `$HOME/.cache/workerhub/SERVER/WORKER`: `pgid` (the program's process group), `out`
//! and `err` (everything it printed, appended), `in` (a FIFO the program reads as its
//! stdin, opened read-write by the program so it never sees an end of input when a
//! connection drops), and `status` once it has ended (`$?`, so 128 + N for signal N).

/// `sh -c SCRIPT sh ARGS...` as one remote command line.
pub fn command(script: &str, args: &[String]) -> Result<String, String> {
    let mut words = vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    words.push("sh".to_string());
    words.extend(args.iter().cloned());
    super::quote::join(&words)
}

/// The spool folder, from `$1` (`SERVER/WORKER`).
#[cfg(test)]
const SPOOL: &str = r#"d="$HOME/.cache/workerhub/$1""#;

/// Starts a program: `KEY CWD STDIN NROOTS ROOT... PROGRAM ARGS...` (STDIN `in` for
/// the FIFO, `null` for /dev/null), its environment as `export` lines on stdin. Checks
/// the folder against the project roots after resolving symlinks, ends what an earlier
/// run of the worker left, starts the program in its own session with `setsid -f`
/// (forked by setsid, not as `&`: an asynchronous command of a script ignores SIGINT, and
/// so would the program), and prints its process group id.
///
/// The worker's environment is the program's alone: it is read in a subshell that then
/// becomes the program, so a worker's `PATH` or `IFS` cannot break the wrapper, and the
/// file holding it is removed before it is read. The wrapper records the status, then
/// ends what is left of the group itself (as a local worker's group is killed when it
/// ends), so no one signals that group id later, when it may be someone else's.
///
/// Exit codes: 91 no `setsid -f` (util-linux) there, 92 it did not start, 93 no spool,
/// 94 outside the roots, 95 no such program, 96 no such folder (ssh itself says 255).
pub const START: &str = r#"umask 077
d="$HOME/.cache/workerhub/$1"; cwd=$2; input=$3; n=$4; shift 4
real=$(cd -P -- "$cwd" 2>/dev/null && pwd -P) || { echo "the folder $cwd cannot be used on this host" >&2; exit 96; }
ok=; [ "$n" -eq 0 ] && ok=1
while [ "$n" -gt 0 ]; do case "$real/" in "$1"/*) ok=1;; esac; shift; n=$((n-1)); done
[ -n "$ok" ] || { echo "$real is outside the allowed project roots (--project-root)" >&2; exit 94; }
setsid --help 2>&1 | grep -q -e '--fork' || { echo "this host has no \`setsid -f\` (util-linux 2.31 or later)" >&2; exit 91; }
if [ -f "$d/pgid" ] && [ ! -f "$d/status" ]; then kill -s KILL -- "-$(cat "$d/pgid")" 2>/dev/null; fi
{ rm -rf -- "$d" && mkdir -p -- "$d" && cd -- "$d" && mkfifo in && : > out && : > err; } || { echo "cannot create the folder $d on this host" >&2; exit 93; }
cat > env
( . ./env; command -v "$1" ) >/dev/null 2>&1 || { rm -f env; echo "\`$1\` was not found on this host" >&2; exit 95; }
[ "$input" = in ] || input=/dev/null
setsid -f sh -c 'd=$1; cd -- "$d" && echo "$$" > pgid.tmp && mv pgid.tmp pgid || exit 1
trap : INT TERM HUP QUIT
input=$3; [ "$input" = in ] && input=$d/in
cd -- "$2" || exit 1; shift 3
( exec 9< "$d/env" && rm -f -- "$d/env" && . /dev/fd/9 && exec 9<&- && exec "$@" ) <>"$input" >>"$d/out" 2>>"$d/err"
echo "$?" > "$d/status.tmp"; mv "$d/status.tmp" "$d/status"
kill -s KILL 0' sh "$d" "$real" "$input" "$@" </dev/null >/dev/null 2>&1
i=0; while [ ! -f pgid ] && [ "$i" -lt 200 ]; do sleep 0.05 2>/dev/null || sleep 1; i=$((i+1)); done
cat pgid 2>/dev/null || { echo "the program did not start" >&2; exit 92; }"#;

/// Follows one of the program's outputs from a byte on: `KEY FROM FILE INPUT`, FROM
/// counted from 1 as `tail -c +FROM` takes it, FILE `out` or `err`; with INPUT `in`
/// its stdin goes to the program. Exit codes: 10 everything is out and the program has
/// ended, 11 it ended while followed (follow again to drain), 12 the connection ended,
/// 97 no spool (deleted). The connection's end is seen as the end of its stdin (an
/// asynchronous command's stdin is /dev/null unless redirected: hence fd 3). A follower
/// of a connection that died without a word (a network cut) may still run: the next one
/// for the same file ends it.
pub const FOLLOW: &str = r#"d="$HOME/.cache/workerhub/$1"
{ cd -- "$d" 2>/dev/null && [ -f pgid ]; } || { echo "the spool $d is gone" >&2; exit 97; }
pg=$(cat pgid)
if [ -f "follow.$3" ]; then kill -s TERM "$(cat "follow.$3")" 2>/dev/null; fi
echo "$$" > "follow.$3"
if [ -f status ]; then tail -c +"$2" "$3"; exit 10; fi
exec 3<&0
tail -c +"$2" -f "$3" & t=$!
if [ "$4" = in ]; then cat <&3 > in & else cat <&3 > /dev/null & fi
c=$!
trap 'kill $t $c 2>/dev/null; exit 12' INT TERM HUP
while [ -f pgid ] && [ ! -f status ] && kill -s 0 $c 2>/dev/null && kill -s 0 $t 2>/dev/null; do
  if ! kill -s 0 -- "-$pg" 2>/dev/null && [ ! -f status ]; then echo 137 > "status.$$"; mv "status.$$" status; fi
  sleep 0.2 2>/dev/null || sleep 1
done
kill $t $c 2>/dev/null
[ -f status ] && exit 11
exit 12"#;

/// Whether the program still runs: `KEY`; prints `running`, `finished` or `gone`.
pub const STATE: &str = r#"d="$HOME/.cache/workerhub/$1"
{ cd -- "$d" 2>/dev/null && [ -f pgid ]; } || { echo gone; exit 0; }
if [ -f status ]; then echo finished; else echo running; fi"#;

/// How it ended, then frees what it printed (the hub has published it): `KEY`.
pub const STATUS: &str = r#"d="$HOME/.cache/workerhub/$1"
cd -- "$d" 2>/dev/null && cat status && rm -f out err in follow.out follow.err"#;

/// Sends a signal to the program's group while it runs: `KEY NAME` (INT, TERM, KILL...).
pub const SIGNAL: &str = r#"d="$HOME/.cache/workerhub/$1"
[ -f "$d/status" ] || { pg=$(cat "$d/pgid" 2>/dev/null) && kill -s "$2" -- "-$pg" 2>/dev/null; }; exit 0"#;

/// Ends the program if it runs, then, with `remove`, its spool: `KEY [remove]`.
pub const CLEANUP: &str = r#"d="$HOME/.cache/workerhub/$1"
[ -f "$d/status" ] || { pg=$(cat "$d/pgid" 2>/dev/null) && kill -s KILL -- "-$pg" 2>/dev/null; }
[ "$2" = remove ] || exit 0
rm -rf -- "$d"; rmdir -- "${d%/*}" 2>/dev/null; exit 0"#;

/// Frees the disk under what was published (the offsets stay valid: the file keeps
/// its length, with a hole where the bytes were): `KEY FILE BYTES`. Where `fallocate`
/// cannot, the spool keeps growing until the program ends.
pub const RELEASE: &str = r#"d="$HOME/.cache/workerhub/$1"
fallocate -p -o 0 -l "$3" "$d/$2" 2>/dev/null; exit 0"#;

/// git in a folder of the host: `FOLDER N NAME=VALUE... ARGS...` (N variables; the
/// arguments git's own, never read by a shell).
pub const GIT: &str = r#"d=$1; n=$2; shift 2
while [ "$n" -gt 0 ]; do export "$1"; shift; n=$((n-1)); done
cd -- "$d" 2>/dev/null || { echo "there is no folder $d on this host" >&2; exit 125; }
exec git "$@""#;

/// The ssh user's `$HOME` on the host (where spools are), symlinks resolved.
pub const HOME: &str = r#"cd -P -- "$HOME" && pwd -P"#;

/// Where a folder is on the host, symlinks resolved: `FOLDER`.
pub const RESOLVE: &str = r#"cd -P -- "$1" 2>/dev/null && pwd -P"#;

#[cfg(test)]
mod tests {
    #[test]
    fn every_script_names_its_spool_the_same_way() {
        for script in [
            super::START,
            super::FOLLOW,
            super::STATE,
            super::STATUS,
            super::SIGNAL,
            super::CLEANUP,
            super::RELEASE,
        ] {
            assert!(script.starts_with("umask 077\n") || script.starts_with(super::SPOOL));
            assert!(script.contains(super::SPOOL));
        }
    }
}
