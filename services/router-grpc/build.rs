//! Compiles proto/chorus/v1/router.proto with protox (pure Rust; no protoc needed) into the
//! tonic client and server. The generated code lives in OUT_DIR and is rebuilt on change.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../proto");
    let file = format!("{proto_dir}/chorus/v1/router.proto");
    println!("cargo:rerun-if-changed={file}");
    let fds = protox::compile([&file], [proto_dir])?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
