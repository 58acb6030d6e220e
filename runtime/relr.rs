// The body of `runtime/build.rs` and `kubelet/build.rs` (both `include!` it): link the
// package's binaries with packed relative relocations where the C library can load them.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=../runtime/relr.rs");
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
