//! Compiles `proto/` with protox (pure Rust), so building needs no protoc on the machine.
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto_root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../proto");
    let chat = proto_root.join("aigw/v1/chat.proto");
    println!("cargo:rerun-if-changed={}", chat.display());

    let descriptors = protox::compile([&chat], [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    // Reflection serves this same descriptor set, so grpcurl needs no .proto file.
    std::fs::write(
        out_dir.join("aigw_descriptor.bin"),
        prost::Message::encode_to_vec(&descriptors),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
