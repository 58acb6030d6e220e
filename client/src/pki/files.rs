//! How the PKI's files reach the disk: certificates are public (mode 0644), private keys are
//! readable by their owner only (0600, set when the file is created, so a key is never
//! readable by others even for an instant). Each file is written beside its final name and
//! renamed over it, so a crash leaves the old file or the new one, never half of one.
//!
//! Read next: `mod.rs`, which decides what to write.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::PkiError;

/// Whether the pair exists: `cert` and `key` both (true), neither or only the key (false: a
/// key without its certificate is left over from an interrupted write and is replaced).
pub(super) fn pair_exists(cert: &Path, key: &Path) -> Result<bool, PkiError> {
    match (cert.exists(), key.exists()) {
        (true, true) => Ok(true),
        (true, false) => Err(PkiError::KeyMissing {
            cert: cert.to_owned(),
            key: key.to_owned(),
        }),
        (false, _) => Ok(false),
    }
}

/// Read a PEM file.
pub(super) fn read(path: &Path) -> Result<String, PkiError> {
    std::fs::read_to_string(path).map_err(|source| PkiError::Read {
        path: path.to_owned(),
        source,
    })
}

/// Write a private key, mode 0600.
pub(super) fn write_key(path: &Path, pem: &str) -> Result<(), PkiError> {
    write(path, pem, 0o600)
}

/// Write a certificate, mode 0644.
pub(super) fn write_cert(path: &Path, pem: &str) -> Result<(), PkiError> {
    write(path, pem, 0o644)
}

fn write(path: &Path, contents: &str, mode: u32) -> Result<(), PkiError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let result = (|| {
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        file.write_all(contents.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    result.map_err(|source| {
        let _ = std::fs::remove_file(&tmp);
        PkiError::Write {
            path: path.to_owned(),
            source,
        }
    })
}
