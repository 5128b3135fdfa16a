//! Compiles the v2x.v1 schemas with protox (pure Rust, no system `protoc`) and generates the prost
//! types plus the serialized FileDescriptorSet that MCAP logs and other languages use.

use std::path::PathBuf;

const FILES: &[&str] = &[
    "v2x/v1/common.proto",
    "v2x/v1/sensor.proto",
    "v2x/v1/roadside.proto",
    "v2x/v1/vehicle.proto",
    "v2x/v1/session.proto",
    "v2x/v1/replay.proto",
    "v2x/v1/signal.proto",
    "v2x/v1/roadway.proto",
    "v2x/v1/northbound.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let root = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?).join("proto");
    for file in FILES {
        println!("cargo:rerun-if-changed={}", root.join(file).display());
    }
    let mut compiler = protox::Compiler::new([&root])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(FILES)?;
    let fds_bytes = compiler.encode_file_descriptor_set();
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("v2x_v1_descriptor.bin"), &fds_bytes)?;

    let mut config = prost_build::Config::new();
    config.enable_type_names();
    config.compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
