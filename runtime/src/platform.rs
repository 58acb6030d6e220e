//! Platforms: the OS, CPU architecture and variant an image is built for (OCI's
//! `platform` of an index entry: `linux/amd64`, `linux/arm64/v8`, `linux/arm/v7`). A
//! multi-platform image is an index of one manifest per platform, and a node pulls the one its
//! CPU runs. The node's platform comes from the architecture this binary was built for
//! ([`Platform::host`]); `pull --platform` chooses another.
//!
//! Matching is containerd's (`platforms.Only`): both sides normalized (`aarch64` = `arm64`,
//! whose `v8` is its default and may be left out; `x86_64` = `amd64`; `arm` without a variant
//! is `v7`), then the same OS, architecture and variant, or an older variant the CPU also runs
//! (`arm/v7` runs `v6` and `v5`), the closest first. Read next: `registry/` and `image.rs`,
//! which choose from an index with [`Platform::choose`].

use std::fmt;

use oci_spec::image::{Descriptor, ImageIndex};

/// Why a platform string is not one.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    #[error("invalid platform {platform:?}: expected OS/ARCH[/VARIANT], as linux/arm64")]
    Invalid { platform: String },
}

/// An OS, architecture and (for ARM) variant, normalized as containerd does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Platform {
    pub os: String,
    pub architecture: String,
    /// Empty when the architecture has none, or it is the architecture's default (arm64's
    /// `v8`, amd64's `v1`).
    pub variant: String,
}

impl Platform {
    /// A platform from an index entry's fields (normalized).
    pub fn new(os: &str, architecture: &str, variant: Option<&str>) -> Self {
        let os = os.to_ascii_lowercase();
        let (architecture, variant) =
            normalize_arch(&architecture.to_ascii_lowercase(), variant.unwrap_or(""));
        Platform {
            os,
            architecture,
            variant,
        }
    }

    /// The node's platform: Linux on the CPU this binary runs on (`std::env::consts::ARCH`
    /// in OCI's, that is Go's, names).
    pub fn host() -> Self {
        let (arch, variant) = match std::env::consts::ARCH {
            "x86_64" => ("amd64", ""),
            "x86" => ("386", ""),
            "aarch64" => ("arm64", "v8"),
            "arm" => ("arm", "v7"),
            "riscv64" => ("riscv64", ""),
            "powerpc64" if cfg!(target_endian = "little") => ("ppc64le", ""),
            "powerpc64" => ("ppc64", ""),
            "s390x" => ("s390x", ""),
            "loongarch64" => ("loong64", ""),
            "mips64" if cfg!(target_endian = "little") => ("mips64le", ""),
            other => (other, ""),
        };
        Platform::new("linux", arch, Some(variant))
    }

    /// `OS/ARCH[/VARIANT]`, as `--platform` takes it.
    pub fn parse(s: &str) -> Result<Self, PlatformError> {
        let parts: Vec<&str> = s.split('/').collect();
        let invalid = || PlatformError::Invalid {
            platform: s.to_string(),
        };
        let valid = |p: &&str| {
            !p.is_empty()
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.')
        };
        if !parts.iter().all(valid) {
            return Err(invalid());
        }
        match parts.as_slice() {
            [os, arch] => Ok(Platform::new(os, arch, None)),
            [os, arch, variant] => Ok(Platform::new(os, arch, Some(variant))),
            _ => Err(invalid()),
        }
    }

    /// How well an image for `image` runs here: `None` not at all, else smaller is better
    /// (0: the same platform; then older variants of the same architecture).
    pub fn rank(&self, image: &Platform) -> Option<usize> {
        if self.os != image.os || self.architecture != image.architecture {
            return None;
        }
        self.compatible_variants()
            .iter()
            .position(|v| *v == image.variant)
    }

    /// The variants of our architecture we run, best first.
    fn compatible_variants(&self) -> Vec<&str> {
        match (self.architecture.as_str(), self.variant.as_str()) {
            ("arm", "v8") => vec!["v8", "v7", "v6", "v5"],
            ("arm", "v7") => vec!["v7", "v6", "v5"],
            ("arm", "v6") => vec!["v6", "v5"],
            ("amd64", "v4") => vec!["v4", "v3", "v2", ""],
            ("amd64", "v3") => vec!["v3", "v2", ""],
            ("amd64", "v2") => vec!["v2", ""],
            (_, v) => vec![v],
        }
    }

    /// The best of `candidates` (each with its platform; `None`: an entry that names none,
    /// taken only when no entry matches by platform), as an index position.
    pub fn choose<'a>(
        &self,
        candidates: impl IntoIterator<Item = Option<&'a Platform>>,
    ) -> Option<usize> {
        let mut best: Option<(usize, usize)> = None;
        let mut unnamed = None;
        for (i, p) in candidates.into_iter().enumerate() {
            match p {
                None => unnamed = unnamed.or(Some(i)),
                Some(p) => {
                    if let Some(r) = self.rank(p) {
                        if best.is_none_or(|(_, b)| r < b) {
                            best = Some((i, r));
                        }
                    }
                }
            }
        }
        best.map(|(i, _)| i).or(unnamed)
    }
}

impl Platform {
    /// The entry of `index` for this platform ([`Platform::choose`]), or the list of the
    /// platforms it has (`linux/amd64, linux/arm/v7`) for the error.
    pub fn choose_manifest<'a>(&self, index: &'a ImageIndex) -> Result<&'a Descriptor, String> {
        let platforms: Vec<Option<Platform>> = index
            .manifests()
            .iter()
            .map(|d| {
                d.platform().as_ref().map(|p| {
                    Platform::new(
                        &p.os().to_string(),
                        &p.architecture().to_string(),
                        p.variant().as_deref(),
                    )
                })
            })
            .collect();
        match self.choose(platforms.iter().map(Option::as_ref)) {
            Some(i) => Ok(&index.manifests()[i]),
            None => Err(platforms
                .iter()
                .flatten()
                .map(Platform::to_string)
                .collect::<Vec<_>>()
                .join(", ")),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.os, self.architecture)?;
        if !self.variant.is_empty() {
            write!(f, "/{}", self.variant)?;
        }
        Ok(())
    }
}

/// containerd's `normalizeArch`: one name per architecture and variant.
fn normalize_arch(arch: &str, variant: &str) -> (String, String) {
    let variant = variant.to_ascii_lowercase();
    let (arch, variant) = match arch {
        "i386" => ("386", ""),
        "x86_64" | "x86-64" | "amd64" => (
            "amd64",
            match variant.as_str() {
                "v1" => "",
                v => v,
            },
        ),
        "aarch64" | "arm64" => (
            "arm64",
            match variant.as_str() {
                "8" | "v8" | "v8.0" => "",
                "9" | "9.0" | "v9.0" => "v9",
                v => v,
            },
        ),
        "armhf" => ("arm", "v7"),
        "armel" => ("arm", "v6"),
        "arm" => (
            "arm",
            match variant.as_str() {
                "" | "7" => "v7",
                "5" => "v5",
                "6" => "v6",
                "8" => "v8",
                v => v,
            },
        ),
        a => (a, variant.as_str()),
    };
    (arch.to_string(), variant.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Platform {
        Platform::parse(s).unwrap()
    }

    #[test]
    fn names_are_normalized_as_containerd_does() {
        assert_eq!(p("linux/aarch64"), p("linux/arm64"));
        assert_eq!(p("linux/arm64/v8"), p("linux/arm64"));
        assert_eq!(p("linux/x86_64"), p("linux/amd64"));
        assert_eq!(p("linux/arm"), p("linux/arm/v7"));
        assert_eq!(p("linux/armhf"), p("linux/arm/v7"));
        assert_eq!(p("linux/arm64/v8").to_string(), "linux/arm64");
        assert_eq!(p("linux/arm/7").to_string(), "linux/arm/v7");
        for bad in [
            "linux",
            "linux/",
            "/amd64",
            "linux/amd64/v1/x",
            "linux/am d64",
            "",
        ] {
            assert!(Platform::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn the_host_platform_is_the_cpu_we_run_on() {
        let host = Platform::host();
        assert_eq!(host.os, "linux");
        let expected = match std::env::consts::ARCH {
            "x86_64" => "linux/amd64",
            "aarch64" => "linux/arm64",
            _ => return,
        };
        assert_eq!(host.to_string(), expected);
    }

    #[test]
    fn an_index_entry_is_chosen_as_containerd_would() {
        let index = |names: &[&str]| -> Vec<Platform> { names.iter().map(|n| p(n)).collect() };
        let choose = |host: &str, entries: &[Platform]| p(host).choose(entries.iter().map(Some));
        let two = index(&["linux/amd64", "linux/arm64/v8"]);
        assert_eq!(choose("linux/amd64", &two), Some(0));
        assert_eq!(choose("linux/arm64", &two), Some(1));
        // arm64 takes an entry with or without its default variant
        assert_eq!(choose("linux/arm64", &index(&["linux/arm64"])), Some(0));
        assert_eq!(
            choose("linux/arm64/v8", &index(&["linux/aarch64/v8"])),
            Some(0)
        );
        assert_eq!(choose("linux/arm64", &index(&["linux/arm64/v9"])), None);
        // arm/v7 runs v6 and v5, the closest first; v6 does not run v7
        let arm = index(&["linux/arm/v5", "linux/arm/v6", "linux/s390x"]);
        assert_eq!(choose("linux/arm/v7", &arm), Some(1));
        assert_eq!(choose("linux/arm/v6", &index(&["linux/arm/v7"])), None);
        // another OS or architecture never matches
        assert_eq!(
            choose("linux/amd64", &index(&["windows/amd64", "linux/386"])),
            None
        );
        // an entry without a platform is the fallback
        let host = p("linux/amd64");
        assert_eq!(host.choose([None, Some(&two[1])]), Some(0));
        assert_eq!(host.choose([None, Some(&two[0])]), Some(1));
    }
}
