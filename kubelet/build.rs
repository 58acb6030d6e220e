//! Link the node's binaries with packed relative relocations (DT_RELR) where the C library can
//! load them (glibc ≥ 2.36 exports `GLIBC_ABI_DT_RELR`). The kubelet binary is exec'd again for
//! every container's shim, and the dynamic loader's pass over ~23 000 relative relocations (a
//! 550 KB table, 11 KB packed) is part of every container start: `--version` took 1.92 ms,
//! 1.58 ms packed (`perf stat -r 50`).
include!("../runtime/relr.rs");
