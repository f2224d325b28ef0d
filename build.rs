//! Compresses the owner's page (src/web/static) into the binary: each file gzip-compressed once here, so the
//! daemon serves the bytes as they are (`Content-Encoding: gzip`) and the binary carries only the compressed
//! form. Writes `$OUT_DIR/web_files.rs`: the table `src/web/mod.rs` includes.

use std::io::Write;
use std::path::Path;

fn main() {
    let dir = Path::new("src/web/static");
    println!("cargo:rerun-if-changed={}", dir.display());
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("src/web/static")
        .map(|e| e.expect("a directory entry").file_name().to_string_lossy().into_owned())
        .filter(|n| !n.starts_with('.'))
        .collect();
    names.sort();
    let mut table = String::from("/// (name, gzip-compressed bytes, uncompressed length, sha256-based etag)\npub static FILES: &[(&str, &[u8], usize, &str)] = &[\n");
    for n in &names {
        let raw = std::fs::read(dir.join(n)).expect("a static file");
        println!("cargo:rerun-if-changed={}", dir.join(n).display());
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&raw).expect("gzip");
        let gz = gz.finish().expect("gzip");
        let file = out.join(format!("{n}.gz"));
        std::fs::write(&file, &gz).expect("writing OUT_DIR");
        // a cheap, stable etag: length and a FNV-1a hash of the content
        let mut h: u64 = 0xcbf29ce484222325;
        for b in &raw {
            h = (h ^ *b as u64).wrapping_mul(0x100000001b3);
        }
        table.push_str(&format!(
            "    ({n:?}, include_bytes!({:?}), {}, \"\\\"{:x}-{:016x}\\\"\"),\n",
            file.display().to_string(),
            raw.len(),
            raw.len(),
            h
        ));
    }
    table.push_str("];\n");
    std::fs::write(out.join("web_files.rs"), table).expect("writing OUT_DIR");
}
