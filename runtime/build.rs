//! Link the runtime's binaries with packed relative relocations (DT_RELR) where the C library
//! can load them (glibc ≥ 2.36 exports `GLIBC_ABI_DT_RELR`), as `kubelet/build.rs` does for the
//! kubelet. `minik8s-runtime` is started for every `run` (and `runtime-bench` times exactly
//! that), and the dynamic loader's pass over its relative relocations is part of each start;
//! packed, the table shrinks some fifty-fold (the kubelet's `--version`: 1.92 ms, 1.58 ms
//! packed, `perf stat -r 50`).
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if !target.contains("linux-gnu") {
        return;
    }
    let libc_supports_relr = [
        "/lib/x86_64-linux-gnu/libc.so.6",
        "/lib/aarch64-linux-gnu/libc.so.6",
        "/lib64/libc.so.6",
        "/usr/lib64/libc.so.6",
    ]
    .iter()
    .filter_map(|p| std::fs::read(p).ok())
    .any(|bytes| {
        let needle = b"GLIBC_ABI_DT_RELR";
        bytes.windows(needle.len()).any(|w| w == needle)
    });
    if libc_supports_relr {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}
