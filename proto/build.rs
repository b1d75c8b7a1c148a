//! Compiles `patchsweep/v1/*.proto` with protox (a protobuf compiler in Rust), so building
//! needs no system `protoc`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "patchsweep/v1/sweep.proto",
        "patchsweep/v1/task_args.proto",
        "patchsweep/v1/worker.proto",
    ];
    for f in files {
        println!("cargo:rerun-if-changed={f}");
    }
    let descriptors = protox::compile(files, ["."])?;
    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(descriptors)?;
    Ok(())
}
