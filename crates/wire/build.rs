//! Generates the Kafka record types from `proto/thermostat.proto`, so the `.proto` is the only definition of
//! the wire format. protox compiles it in pure Rust (no `protoc` on the build machine); prost-build writes the
//! structs into `OUT_DIR`, where `src/proto.rs` includes them.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/thermostat.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"])?;
    prost_build::Config::new().compile_fds(descriptors)?;
    Ok(())
}
