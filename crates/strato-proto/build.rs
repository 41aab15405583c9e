//! Compiles proto/strato/v1 with protox (pure Rust: no system protoc needed) and
//! generates the tonic clients and servers, plus the file descriptor set that server
//! reflection serves.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let files = [
        "common",
        "compute",
        "images",
        "volumes",
        "usage",
        "regions",
        "placement",
        "launch_templates",
        "key_pairs",
        "vpc",
        "security_groups",
        "network_interfaces",
        "addresses",
        "tags",
        "access_keys",
        "roles",
        "hosts",
    ]
    .map(|f| root.join(format!("strato/v1/{f}.proto")));
    for f in &files {
        println!("cargo:rerun-if-changed={}", f.display());
    }
    let fds = protox::compile(&files, [&root])?;
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(
        out.join("strato_v1_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure().compile_fds(fds)?;
    Ok(())
}
