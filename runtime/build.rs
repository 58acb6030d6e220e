//! Link the runtime's binaries with packed relative relocations (DT_RELR) where the C library
//! can load them (glibc ≥ 2.36 exports `GLIBC_ABI_DT_RELR`), as `kubelet/build.rs` does for the
//! kubelet. `minik8s-runtime` is started for every `run` (and `runtime-bench` times exactly
//! that), and the dynamic loader's pass over its relative relocations is part of each start;
//! packed, the table shrinks some fifty-fold (the kubelet's `--version`: 1.92 ms, 1.58 ms
//! packed, `perf stat -r 50`).
include!("relr.rs");
