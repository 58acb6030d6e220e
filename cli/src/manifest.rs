//! Manifests: the objects of `-f FILE|DIR|-`, in the order written.
//!
//! A manifest file holds one or more YAML documents separated by `---` (JSON is YAML too); a
//! document may be a `kind: List` whose `items` are the objects. A directory means its
//! `.yaml`, `.yml` and `.json` files in name order (with `-R`, its subdirectories too), and
//! `-` means stdin. Every object remembers where it came from, because kubectl's messages
//! name the file (`error when creating "pod.yaml"`), and a YAML error names file and line.
//! Read next: `commands/apply.rs`.

use std::io::Read;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::Value;

/// Why the manifests could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// `-f` names nothing.
    #[error("the path \"{0}\" does not exist")]
    Missing(String),
    /// Reading a file (or stdin) failed.
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    /// A document is not valid YAML; `line` is 1-based.
    #[error("error parsing {path}: error converting YAML to JSON: yaml: line {line}: {reason}")]
    Yaml {
        path: String,
        line: usize,
        reason: String,
    },
    /// A document without `apiVersion` or `kind`.
    #[error("error validating \"{path}\": error validating data: [{missing}]")]
    Incomplete { path: String, missing: String },
    /// Nothing to do at all.
    #[error("no objects passed to {verb}")]
    Empty { verb: &'static str },
}

/// One object and the file it came from (`STDIN` for `-`).
#[derive(Debug, Clone, PartialEq)]
pub struct Manifest {
    pub source: String,
    pub object: Value,
}

impl Manifest {
    pub fn api_version(&self) -> &str {
        self.object["apiVersion"].as_str().unwrap_or_default()
    }

    pub fn kind(&self) -> &str {
        self.object["kind"].as_str().unwrap_or_default()
    }

    pub fn name(&self) -> &str {
        self.object["metadata"]["name"].as_str().unwrap_or_default()
    }

    /// `metadata.namespace`, if the manifest sets one.
    pub fn namespace(&self) -> Option<&str> {
        self.object["metadata"]["namespace"].as_str()
    }
}

/// The objects of every `-f` argument, in order; `verb` names the command for errors.
pub fn read_all(
    args: &[String],
    recursive: bool,
    verb: &'static str,
) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for arg in args {
        if arg == "-" {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|source| ManifestError::Read {
                    path: "STDIN".into(),
                    source,
                })?;
            out.extend(parse("STDIN", &text)?);
            continue;
        }
        for file in files(Path::new(arg), recursive)? {
            let source = file.display().to_string();
            let text = std::fs::read_to_string(&file).map_err(|e| ManifestError::Read {
                path: source.clone(),
                source: e,
            })?;
            out.extend(parse(&source, &text)?);
        }
    }
    if out.is_empty() {
        return Err(ManifestError::Empty { verb });
    }
    Ok(out)
}

/// `path` itself, or the manifest files in it (sorted; below it too with `recursive`).
fn files(path: &Path, recursive: bool) -> Result<Vec<PathBuf>, ManifestError> {
    let missing = || ManifestError::Missing(path.display().to_string());
    let meta = std::fs::metadata(path).map_err(|_| missing())?;
    if !meta.is_dir() {
        return Ok(vec![path.to_path_buf()]);
    }
    let read_err = |source| ManifestError::Read {
        path: path.display().to_string(),
        source,
    };
    let mut entries: Vec<PathBuf> = std::fs::read_dir(path)
        .map_err(read_err)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    let mut out = Vec::new();
    for entry in entries {
        if entry.is_dir() {
            if recursive {
                out.extend(files(&entry, true)?);
            }
        } else if is_manifest(&entry) {
            out.push(entry);
        }
    }
    Ok(out)
}

fn is_manifest(path: &Path) -> bool {
    matches!(
        path.extension().and_then(|e| e.to_str()),
        Some("yaml" | "yml" | "json")
    )
}

/// The objects of one file's text: every non-empty document, `List`s expanded.
pub fn parse(source: &str, text: &str) -> Result<Vec<Manifest>, ManifestError> {
    let mut out = Vec::new();
    for document in serde_yaml::Deserializer::from_str(text) {
        let value = Value::deserialize(document).map_err(|e| yaml_error(source, &e))?;
        match value {
            Value::Null => continue,
            Value::Object(ref m) if m.get("kind") == Some(&Value::from("List")) => {
                for item in m
                    .get("items")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                {
                    out.push(checked(source, item.clone())?);
                }
            }
            other => out.push(checked(source, other)?),
        }
    }
    Ok(out)
}

fn yaml_error(source: &str, e: &serde_yaml::Error) -> ManifestError {
    let line = e.location().map(|l| l.line()).unwrap_or(1);
    let reason = e.to_string();
    let reason = match reason.split_once(" at line ") {
        Some((head, _)) => head.to_string(),
        None => reason,
    };
    ManifestError::Yaml {
        path: source.to_string(),
        line,
        reason,
    }
}

fn checked(source: &str, object: Value) -> Result<Manifest, ManifestError> {
    let mut missing = Vec::new();
    for field in ["apiVersion", "kind"] {
        if !object.get(field).is_some_and(Value::is_string) {
            missing.push(format!("{field} not set"));
        }
    }
    if !missing.is_empty() {
        return Err(ManifestError::Incomplete {
            path: source.to_string(),
            missing: missing.join(", "),
        });
    }
    Ok(Manifest {
        source: source.to_string(),
        object,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn documents_and_lists_become_objects_in_order() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata: {name: a}\n---\n---\n\
                    apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Pod, metadata: {name: b}}\n";
        let objects = parse("f.yaml", text).unwrap();
        let names: Vec<&str> = objects.iter().map(Manifest::name).collect();
        assert_eq!(names, ["a", "b"]);
        assert_eq!(objects[1].source, "f.yaml");
    }

    #[test]
    fn yaml_errors_name_the_file_and_line() {
        let text = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: a\n  labels: [x\n";
        let err = parse("bad.yaml", text).unwrap_err();
        let ManifestError::Yaml { path, line, .. } = &err else {
            panic!("{err}");
        };
        assert_eq!(path, "bad.yaml");
        assert!(*line >= 5, "{err}");
        assert!(
            err.to_string().starts_with("error parsing bad.yaml: "),
            "{err}"
        );
    }

    #[test]
    fn objects_need_api_version_and_kind() {
        let err = parse("x.yaml", "metadata: {name: a}\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "error validating \"x.yaml\": error validating data: [apiVersion not set, kind not set]"
        );
    }

    #[test]
    fn directories_hold_manifest_files_sorted() {
        let dir = tempfile::tempdir().unwrap();
        for name in ["b.yaml", "a.yml", "notes.txt", "sub/c.json"] {
            let path = dir.path().join(name);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(path, "").unwrap();
        }
        let names = |r| -> Vec<String> {
            files(dir.path(), r)
                .unwrap()
                .iter()
                .map(|p| p.strip_prefix(dir.path()).unwrap().display().to_string())
                .collect()
        };
        assert_eq!(names(false), ["a.yml", "b.yaml"]);
        assert_eq!(names(true), ["a.yml", "b.yaml", "sub/c.json"]);
        assert!(matches!(
            files(Path::new("/nonexistent"), false),
            Err(ManifestError::Missing(_))
        ));
    }
}
