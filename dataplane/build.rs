//! Builds the XDP program (`ebpf/`) for the BPF target and leaves the object in OUT_DIR.
fn main() -> anyhow::Result<()> {
    let metadata = aya_build::Package {
        name: "ztplane-ebpf",
        root_dir: concat!(env!("CARGO_MANIFEST_DIR"), "/../ebpf"),
        ..Default::default()
    };
    aya_build::build_ebpf([metadata], aya_build::Toolchain::Nightly)
}
