//! Embeds every file under `static/` in the binary, so the UI is served from any folder
//! and adding a file to the UI needs no code change.

use std::fmt::Write as _;
use std::path::Path;

fn collect(dir: &Path, root: &Path, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.flatten().map(|e| e.path()).collect();
    entries.sort();
    for path in entries {
        if path.is_dir() {
            collect(&path, root, out);
        } else if let Ok(rel) = path.strip_prefix(root) {
            out.push(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

fn main() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("static");
    println!("cargo:rerun-if-changed=static");
    let mut files = Vec::new();
    collect(&root, &root, &mut files);
    let mut code = String::from("&[\n");
    for file in &files {
        println!("cargo:rerun-if-changed=static/{file}");
        let _ = writeln!(
            code,
            "    ({file:?}, include_bytes!({:?})),",
            root.join(file).to_string_lossy()
        );
    }
    code.push(']');
    let out = Path::new(&std::env::var("OUT_DIR").expect("OUT_DIR")).join("static_files.rs");
    std::fs::write(out, code).expect("write static_files.rs");
}
