//! The UI's files: embedded in the binary, or read from `--static-dir` during
//! development. Paths never leave the folder: `..`, empty segments and symlinks out are
//! refused.

use std::path::{Path, PathBuf};

use super::Reply;

/// Every file of `static/`, built into the binary (listed by `build.rs`).
static EMBEDDED: &[(&str, &[u8])] = include!(concat!(env!("OUT_DIR"), "/static_files.rs"));

pub struct StaticFiles {
    dir: Option<PathBuf>,
}

fn content_type(name: &str) -> &'static str {
    match Path::new(name).extension().and_then(|e| e.to_str()) {
        Some("html") => "text/html; charset=utf-8",
        Some("js") => "text/javascript; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("svg") => "image/svg+xml",
        Some("png") => "image/png",
        Some("ico") => "image/x-icon",
        Some("json") => "application/json",
        _ => "application/octet-stream",
    }
}

impl StaticFiles {
    pub fn new(dir: Option<PathBuf>) -> StaticFiles {
        StaticFiles {
            dir: dir.and_then(|d| d.canonicalize().ok()),
        }
    }

    pub fn source(&self) -> String {
        match &self.dir {
            Some(dir) => dir.display().to_string(),
            None => "embedded".into(),
        }
    }

    /// The file for a (decoded) request path, if there is one.
    pub fn get(&self, path: &str) -> Option<Reply> {
        let name = if path == "/" {
            "index.html"
        } else {
            path.strip_prefix('/')?
        };
        let safe = !name.is_empty()
            && name.split('/').all(|seg| {
                !seg.is_empty() && seg != "." && seg != ".." && !seg.contains(['\\', '\0'])
            });
        if !safe {
            return None;
        }
        let body = match &self.dir {
            None => EMBEDDED
                .iter()
                .find(|(n, _)| *n == name)
                .map(|(_, b)| b.to_vec())?,
            Some(dir) => {
                let file = dir.join(name).canonicalize().ok()?;
                if !file.starts_with(dir) || !file.is_file() {
                    return None;
                }
                std::fs::read(file).ok()?
            }
        };
        Some(Reply::Bytes {
            status: 200,
            content_type: content_type(name).into(),
            body,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traversal_is_refused() {
        let files = StaticFiles::new(None);
        assert!(files.get("/").is_some());
        for bad in [
            "/../etc/passwd",
            "/a/../index.html",
            "//etc/passwd",
            "/./index.html",
        ] {
            assert!(files.get(bad).is_none(), "{bad}");
        }
    }
}
