//! Arguments for a remote POSIX shell. ssh hands the remote side one command line,
//! which the user's login shell splits and expands: every argument workerhub sends
//! (a program, a path, a message) is quoted here, and only here, so that it arrives as
//! one word, byte for byte, whatever it holds: spaces, quotes, `$`, `;`, backquotes,
//! newlines, a leading `-`.

/// `arg` as one word of a POSIX shell command line: inside single quotes, where nothing
/// is special, with each `'` written as `'\''`. A NUL cannot be in a command line at
/// all, so an argument holding one is refused.
pub fn quote(arg: &str) -> Result<String, String> {
    if arg.contains('\0') {
        return Err("an argument for the remote host holds a NUL byte".into());
    }
    let mut out = String::with_capacity(arg.len() + 2);
    out.push('\'');
    for c in arg.chars() {
        if c == '\'' {
            out.push_str("'\\''");
        } else {
            out.push(c);
        }
    }
    out.push('\'');
    Ok(out)
}

/// `args` as one command line, each quoted.
pub fn join<S: AsRef<str>>(args: &[S]) -> Result<String, String> {
    let quoted: Result<Vec<String>, String> = args.iter().map(|a| quote(a.as_ref())).collect();
    Ok(quoted?.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn awkward_arguments_are_one_quoted_word() {
        assert_eq!(quote("").unwrap(), "''");
        assert_eq!(quote("it's").unwrap(), "'it'\\''s'");
        assert_eq!(quote("-rf").unwrap(), "'-rf'");
        assert_eq!(
            join(&["echo", "a b", "$HOME"]).unwrap(),
            "'echo' 'a b' '$HOME'"
        );
        assert!(quote("a\0b").is_err());
    }
}
