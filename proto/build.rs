//! Compiles `htx/v1/*.proto` with protox (pure Rust, no `protoc` needed) and
//! writes the descriptor set used by gRPC server reflection.
use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "htx/v1/records.proto",
        "htx/v1/sync.proto",
        "htx/v1/node_api.proto",
        "htx/v1/hub_admin.proto",
        "htx/v1/progress.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let fds = protox::compile(files, ["."])?;
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out.join("htx_descriptor.bin"), fds.encode_to_vec())?;
    // Progress replies are also served as JSON (HTTP, `--format json`).
    let mut config = tonic_prost_build::configure();
    for ty in [
        "ProgressReply",
        "UnitFigures",
        "Figure",
        "Source",
        "UnplacedRecord",
    ] {
        config = config.type_attribute(format!(".htx.v1.{ty}"), "#[derive(serde::Serialize)]");
    }
    config.compile_fds(fds)?;
    Ok(())
}
