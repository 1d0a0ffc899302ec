//! Embeds the web app (`clients/web`) and the browser SDK (`clients/js/dist`) so a gateway
//! binary serves them with nothing else installed. A checkout without them builds a gateway
//! that answers 404 for the app.

use std::{
    fmt::Write as _,
    path::{Path, PathBuf},
};

/// Files of `dir` (recursively) whose extension is one of `exts`, sorted.
fn files(dir: &Path, exts: &[&str], out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            files(&path, exts, out);
        } else if path
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| exts.contains(&e))
        {
            out.push(path);
        }
    }
    out.sort();
}

fn table(name: &str, root: &Path, exts: &[&str], code: &mut String) {
    println!("cargo:rerun-if-changed={}", root.display());
    let mut found = Vec::new();
    files(root, exts, &mut found);
    writeln!(code, "pub(crate) static {name}: &[(&str, &[u8])] = &[").unwrap();
    for path in found {
        let rel = path
            .strip_prefix(root)
            .expect("found under root")
            .to_string_lossy()
            .replace('\\', "/");
        writeln!(code, "    ({rel:?}, include_bytes!({:?})),", path.display()).unwrap();
    }
    writeln!(code, "];").unwrap();
}

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let clients = manifest.join("../../clients");
    let mut code = String::new();
    table(
        "APP",
        &clients.join("web"),
        &["html", "js", "css", "svg", "png", "ico"],
        &mut code,
    );
    table("SDK", &clients.join("js/dist"), &["js"], &mut code);
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("set by cargo")).join("assets.rs");
    std::fs::write(out, code).expect("OUT_DIR is writable");
}
