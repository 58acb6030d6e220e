//! `build`: an image from a Dockerfile, made the way Docker's classic builder makes it, by
//! nothing more than the runtime's own `run` and `commit`. Each `RUN` starts a container from
//! the image so far, waits for it and commits its writable layer (the upper dir, `overlay.rs`)
//! as one new layer; `COPY` tars files of the build context into one layer; `ENV`, `WORKDIR`,
//! `CMD` and `ENTRYPOINT` change only the image's config (an `empty_layer` history entry). So
//! an image's history is its recipe, one entry per instruction (`history` prints it).
//!
//! The subset, with no network: `FROM` (an image in the store, or `scratch`), `RUN`, `COPY`,
//! `ENV`, `WORKDIR`, `CMD`, `ENTRYPOINT`; comments and `\` line continuations. Anything else is
//! refused with its line number. No variable substitution, no multi-stage builds, no
//! `ADD`/`USER`/`ARG`/`LABEL`. The parser is `dockerfile.rs`. Read next: `overlay.rs`
//! (commit).

mod dockerfile;

pub use dockerfile::{parse, CommandForm, Instruction, ParseError, Step};

use std::fs;
use std::io::{self, Write};
use std::path::{Component, Path, PathBuf};

use serde_json::{json, Value};

use crate::container::{Attach, ContainerError, CreateOptions};
use crate::image::{Image, ImageError, NewLayer, MEDIA_LAYER_TAR};
use crate::overlay::{image_layers, CommitOptions};
use crate::{layer, logs, random_hex, Runtime};

/// Why a build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    /// The Dockerfile has a line we do not understand or do not support.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The image so far could not be read or the result not tagged.
    #[error(transparent)]
    Image(#[from] ImageError),
    /// A `COPY` source is outside the build context.
    #[error("Dockerfile line {line}: COPY {source_path:?}: outside the build context")]
    OutsideContext { line: usize, source_path: String },
    /// A step failed to run.
    #[error("Dockerfile line {line}: {instruction}: {source}")]
    Step {
        line: usize,
        instruction: String,
        #[source]
        source: Box<ContainerError>,
    },
    /// A `RUN` command exited non-zero (Docker's wording).
    #[error("Dockerfile line {line}: the command '{command}' returned a non-zero code: {code}")]
    RunFailed {
        line: usize,
        command: String,
        code: i32,
    },
    /// A file of the build context could not be read.
    #[error("Dockerfile line {line}: COPY {path:?}: {source}")]
    Copy {
        line: usize,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The image being built: its config document and layers, and the name it is stored under
/// while the next step runs from it.
struct Current {
    name: String,
    config: Value,
    layers: Vec<NewLayer>,
}

/// The names of the intermediate images, removed when the build ends, however it ends.
struct TempNames<'a> {
    rt: &'a Runtime,
    prefix: String,
    names: Vec<String>,
}

impl TempNames<'_> {
    fn next(&mut self) -> String {
        let name = format!("{}:step{}", self.prefix, self.names.len() + 1);
        self.names.push(name.clone());
        name
    }
}

impl Drop for TempNames<'_> {
    fn drop(&mut self) {
        for n in &self.names {
            let _ = self.rt.images.untag(n);
        }
    }
}

impl Runtime {
    /// Run `steps` with `context` as the build context; the image is tagged `tag` (else
    /// `build-<id>`). Progress goes to `out`, as Docker's classic builder prints it; a `RUN`'s
    /// own output goes to this process's stdout and stderr. Returns the image's name.
    pub fn build(
        &self,
        steps: &[Step],
        context: &Path,
        tag: Option<&str>,
        out: &mut dyn Write,
    ) -> Result<String, BuildError> {
        let mut temp = TempNames {
            rt: self,
            prefix: format!("minik8s-build-{}", random_hex(6)),
            names: Vec::new(),
        };
        let mut current: Option<Current> = None;
        for (n, step) in steps.iter().enumerate() {
            let _ = writeln!(out, "Step {}/{} : {}", n + 1, steps.len(), step.text);
            let wrap = |source: ContainerError| BuildError::Step {
                line: step.line,
                instruction: step.text.clone(),
                source: Box::new(source),
            };
            let next = match (&step.instruction, current.take()) {
                (Instruction::From(image), _) => self.from(image, &mut temp).map_err(wrap)?,
                (_, None) => unreachable!("parse() puts FROM first"),
                (Instruction::Run(cmd), Some(cur)) => {
                    self.run_step(step.line, cmd, &cur, &mut temp, out)?
                }
                (Instruction::Copy { sources, dest }, Some(cur)) => {
                    self.copy_step(step.line, sources, dest, context, cur, &mut temp)?
                }
                (other, Some(cur)) => self.config_step(other, cur, &mut temp).map_err(wrap)?,
            };
            let image = self
                .images
                .resolve(&next.name)
                .map_err(|e| wrap(e.into()))?;
            let _ = writeln!(out, " ---> {}", short_id(&image));
            current = Some(next);
        }
        let Some(cur) = current else {
            unreachable!("parse() returns at least one step")
        };
        let image = self.images.resolve(&cur.name)?;
        let name = tag.map_or_else(|| format!("build-{}", short_id(&image)), str::to_string);
        self.images.tag(&name, &image.manifest_digest)?;
        let _ = writeln!(out, "Successfully built {}", short_id(&image));
        let name = crate::image::normalize(&name);
        let _ = writeln!(out, "Successfully tagged {name}");
        Ok(name)
    }

    /// `FROM`: the base image's config and layers (`scratch`: none).
    fn from(&self, image: &str, temp: &mut TempNames<'_>) -> Result<Current, ContainerError> {
        if image == "scratch" {
            let config = json!({
                "architecture": "amd64",
                "os": "linux",
                "config": {},
                "rootfs": { "type": "layers", "diff_ids": [] },
                "history": [],
            });
            return self.store(config, Vec::new(), temp);
        }
        let base = self.images.resolve(image)?;
        let config = serde_json::from_slice(&self.images.read_blob(&base.config_digest)?)
            .unwrap_or_else(|_| json!({}));
        Ok(Current {
            name: base.name.clone(),
            config,
            layers: image_layers(&base),
        })
    }

    /// Store a config and its layers as the next intermediate image.
    fn store(
        &self,
        mut config: Value,
        layers: Vec<NewLayer>,
        temp: &mut TempNames<'_>,
    ) -> Result<Current, ContainerError> {
        let diff_ids: Vec<&str> = layers.iter().map(|l| l.diff_id.as_str()).collect();
        config["rootfs"] = json!({ "type": "layers", "diff_ids": diff_ids });
        config["created"] = json!(logs::now());
        let name = temp.next();
        self.images.add_image(&name, &config, &layers)?;
        Ok(Current {
            name,
            config,
            layers,
        })
    }

    /// `RUN`: a container from the image so far, its command run to the end, its writable
    /// layer committed.
    fn run_step(
        &self,
        line: usize,
        cmd: &CommandForm,
        cur: &Current,
        temp: &mut TempNames<'_>,
        out: &mut dyn Write,
    ) -> Result<Current, BuildError> {
        let argv = cmd.argv();
        let wrap = |source: ContainerError| BuildError::Step {
            line,
            instruction: format!("RUN {}", argv.join(" ")),
            source: Box::new(source),
        };
        let opts = CreateOptions {
            image: cur.name.clone(),
            command: argv.clone(),
            entrypoint: Some(Vec::new()),
            ..CreateOptions::default()
        };
        let spec = self.create(&opts).map_err(wrap)?;
        let id = spec.id;
        let _ = writeln!(out, " ---> Running in {}", &id[..12]);
        let _ = out.flush();
        let result = self
            .start(&id, Attach::Foreground { stdin: false })
            .map(|s| s.wait());
        let committed = match result {
            Ok(Some((0, _))) => {
                let name = temp.next();
                let opts = CommitOptions {
                    created_by: Some(argv.join(" ")),
                };
                self.commit_with(&id, &name, &opts).map(|_| name)
            }
            Ok(Some((code, _))) => {
                let _ = self.remove(&id, true);
                return Err(BuildError::RunFailed {
                    line,
                    command: argv.join(" "),
                    code,
                });
            }
            Ok(None) => Err(ContainerError::StartFailed {
                code: 125,
                message: "lost contact with the container's shim".into(),
            }),
            Err(e) => Err(e),
        };
        let _ = self.remove(&id, true);
        let name = committed.map_err(wrap)?;
        let image = self.images.resolve(&name).map_err(|e| wrap(e.into()))?;
        let config = serde_json::from_slice(
            &self
                .images
                .read_blob(&image.config_digest)
                .map_err(|e| wrap(e.into()))?,
        )
        .unwrap_or_else(|_| json!({}));
        Ok(Current {
            name,
            config,
            layers: image_layers(&image),
        })
    }

    /// `ENV`, `WORKDIR`, `CMD`, `ENTRYPOINT`: a new config, no new layer (but for a `WORKDIR`
    /// the image lacks: its directories make a layer, as Docker creates it).
    fn config_step(
        &self,
        instruction: &Instruction,
        cur: Current,
        temp: &mut TempNames<'_>,
    ) -> Result<Current, ContainerError> {
        let Current {
            name,
            mut config,
            mut layers,
        } = cur;
        if !config["config"].is_object() {
            config["config"] = json!({});
        }
        let c = &mut config["config"];
        let (created_by, layer) = match instruction {
            Instruction::Env(vars) => {
                let mut env: Vec<String> = c["Env"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| v.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                for (k, v) in vars {
                    env.retain(|e| e.split_once('=').map(|(ek, _)| ek) != Some(k));
                    env.push(format!("{k}={v}"));
                }
                c["Env"] = json!(env);
                let shown: Vec<String> = vars.iter().map(|(k, v)| format!("{k}={v}")).collect();
                (format!("ENV {}", shown.join(" ")), None)
            }
            Instruction::Workdir(dir) => {
                let base = c["WorkingDir"]
                    .as_str()
                    .filter(|w| !w.is_empty())
                    .unwrap_or("/");
                let dir = clean_absolute(&Path::new(base).join(dir));
                c["WorkingDir"] = json!(dir.display().to_string());
                let image = self.images.resolve(&name)?;
                let layer = self.dirs_layer(&image, &dir)?;
                (format!("WORKDIR {}", dir.display()), layer)
            }
            Instruction::Cmd(cmd) => {
                c["Cmd"] = json!(cmd.argv());
                (format!("CMD {}", json!(cmd.argv())), None)
            }
            Instruction::Entrypoint(cmd) => {
                c["Entrypoint"] = json!(cmd.argv());
                (format!("ENTRYPOINT {}", json!(cmd.argv())), None)
            }
            Instruction::From(_) | Instruction::Run(_) | Instruction::Copy { .. } => {
                unreachable!("steps with layers of their own are not config steps")
            }
        };
        let mut entry = json!({
            "created": logs::now(),
            "created_by": format!("/bin/sh -c #(nop)  {created_by}"),
        });
        match layer {
            Some(l) => layers.push(l),
            None => entry["empty_layer"] = json!(true),
        }
        push_history(&mut config, entry);
        self.store(config, layers, temp)
    }

    /// A layer with the directories of `dir` the image lacks, if it lacks any.
    fn dirs_layer(&self, image: &Image, dir: &Path) -> Result<Option<NewLayer>, ContainerError> {
        let mut b = tar::Builder::new(Vec::new());
        let mut any = false;
        let mut rel = PathBuf::new();
        for c in dir
            .components()
            .filter(|c| matches!(c, Component::Normal(_)))
        {
            rel.push(c);
            if !exists_in_image(image, &rel) {
                append_dir(&mut b, &rel, 0o755, 0).map_err(tar_err(dir))?;
                any = true;
            }
        }
        if !any {
            return Ok(None);
        }
        let tar = b.into_inner().map_err(tar_err(dir))?;
        Ok(Some(self.put_layer(&tar)?))
    }

    fn put_layer(&self, tar: &[u8]) -> Result<NewLayer, ImageError> {
        let (digest, size) = self.images.put_blob(tar, None)?;
        Ok(NewLayer {
            diff_id: digest.clone(),
            digest,
            size,
            media_type: MEDIA_LAYER_TAR.into(),
        })
    }

    /// `COPY`: the sources, from the build context, as one layer.
    fn copy_step(
        &self,
        line: usize,
        sources: &[String],
        dest: &str,
        context: &Path,
        cur: Current,
        temp: &mut TempNames<'_>,
    ) -> Result<Current, BuildError> {
        let copy_err = |path: &Path| {
            let path = path.to_owned();
            move |source| BuildError::Copy { line, path, source }
        };
        let wrap = |source: ContainerError| BuildError::Step {
            line,
            instruction: format!("COPY {} {dest}", sources.join(" ")),
            source: Box::new(source),
        };
        let image = self.images.resolve(&cur.name).map_err(|e| wrap(e.into()))?;
        let workdir = cur.config["config"]["WorkingDir"]
            .as_str()
            .filter(|w| !w.is_empty())
            .unwrap_or("/");
        let dest_path = clean_absolute(&Path::new(workdir).join(dest));
        let dest_rel = dest_path.strip_prefix("/").unwrap_or(&dest_path).to_owned();
        let into_dir =
            dest.ends_with('/') || sources.len() > 1 || layer_dir_in_image(&image, &dest_rel);
        let mut b = tar::Builder::new(Vec::new());
        let parent = if into_dir {
            dest_rel.clone()
        } else {
            dest_rel.parent().map(Path::to_path_buf).unwrap_or_default()
        };
        let mut rel = PathBuf::new();
        for c in parent.components() {
            rel.push(c);
            if !exists_in_image(&image, &rel) {
                append_dir(&mut b, &rel, 0o755, 0).map_err(copy_err(&rel))?;
            }
        }
        let mut kinds = Vec::new();
        for src in sources {
            let path = in_context(context, src).ok_or_else(|| BuildError::OutsideContext {
                line,
                source_path: src.clone(),
            })?;
            let meta = fs::symlink_metadata(&path).map_err(copy_err(&path))?;
            kinds.push(if meta.is_dir() { "dir" } else { "file" });
            let target = match (meta.is_dir(), into_dir) {
                (true, _) => dest_rel.clone(),
                (false, true) => dest_rel.join(path.file_name().unwrap_or_default()),
                (false, false) => dest_rel.clone(),
            };
            append_tree(&mut b, &path, &target).map_err(copy_err(&path))?;
        }
        let tar = b.into_inner().map_err(copy_err(context))?;
        let layer = self.put_layer(&tar).map_err(|e| wrap(e.into()))?;
        let kind = if kinds.len() == 1 { kinds[0] } else { "multi" };
        let hash = layer.diff_id.trim_start_matches("sha256:").to_string();
        let created_by = format!(
            "/bin/sh -c #(nop) COPY {kind}:{hash} in {} ",
            if into_dir {
                format!("{}/", dest_path.display()).replace("//", "/")
            } else {
                dest_path.display().to_string()
            }
        );
        let Current {
            mut config,
            mut layers,
            ..
        } = cur;
        push_history(
            &mut config,
            json!({ "created": logs::now(), "created_by": created_by }),
        );
        layers.push(layer);
        self.store(config, layers, temp).map_err(wrap)
    }
}

fn push_history(config: &mut Value, entry: Value) {
    let mut history = config["history"].as_array().cloned().unwrap_or_default();
    history.push(entry);
    config["history"] = json!(history);
}

/// The 12 hex digits Docker shows of an image id (its config digest).
pub fn short_id(image: &Image) -> String {
    image.config_digest.trim_start_matches("sha256:")[..12].to_string()
}

/// `path` with `.` and `..` resolved lexically, absolute, never above `/`.
fn clean_absolute(path: &Path) -> PathBuf {
    let mut out = PathBuf::from("/");
    for c in path.components() {
        match c {
            Component::Normal(n) => out.push(n),
            Component::ParentDir => {
                out.pop();
            }
            _ => {}
        }
    }
    out
}

/// `src` inside the build context, or `None` if it would leave it.
fn in_context(context: &Path, src: &str) -> Option<PathBuf> {
    let rel = layer::clean_relative(Path::new(src.trim_start_matches('/'))).ok()?;
    let path = context.join(rel);
    let canonical = fs::canonicalize(&path).ok()?;
    let root = fs::canonicalize(context).ok()?;
    canonical.starts_with(&root).then_some(path)
}

/// Whether `rel` exists in the image's layers (the topmost layer that has it decides).
fn exists_in_image(image: &Image, rel: &Path) -> bool {
    image
        .layers
        .iter()
        .rev()
        .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
        .is_some_and(|m| !layer::is_whiteout(&m))
}

fn layer_dir_in_image(image: &Image, rel: &Path) -> bool {
    rel.as_os_str().is_empty()
        || image
            .layers
            .iter()
            .rev()
            .find_map(|l| fs::symlink_metadata(l.join(rel)).ok())
            .is_some_and(|m| m.is_dir())
}

fn tar_err(path: &Path) -> impl FnOnce(io::Error) -> ContainerError + '_ {
    move |source| ContainerError::Io {
        step: "build layer",
        path: path.to_owned(),
        source,
    }
}

fn append_dir(b: &mut tar::Builder<Vec<u8>>, rel: &Path, mode: u32, mtime: u64) -> io::Result<()> {
    let mut h = tar::Header::new_gnu();
    h.set_entry_type(tar::EntryType::Directory);
    h.set_mode(mode);
    h.set_size(0);
    h.set_mtime(mtime);
    b.append_data(&mut h, rel, io::empty())
}

/// `src` (a file, a symlink or a directory's contents) at `target`, owned by root as
/// Docker's `COPY` makes it.
fn append_tree(b: &mut tar::Builder<Vec<u8>>, src: &Path, target: &Path) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let meta = fs::symlink_metadata(src)?;
    let mut h = tar::Header::new_gnu();
    h.set_mode(meta.mode() & 0o7777);
    h.set_mtime(meta.mtime().max(0) as u64);
    h.set_uid(0);
    h.set_gid(0);
    if meta.is_dir() {
        if !target.as_os_str().is_empty() {
            append_dir(b, target, meta.mode() & 0o7777, meta.mtime().max(0) as u64)?;
        }
        let mut entries: Vec<_> = fs::read_dir(src)?.flatten().collect();
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            append_tree(b, &e.path(), &target.join(e.file_name()))?;
        }
    } else if meta.file_type().is_symlink() {
        h.set_entry_type(tar::EntryType::Symlink);
        h.set_size(0);
        b.append_link(&mut h, target, fs::read_link(src)?)?;
    } else if meta.is_file() {
        h.set_size(meta.len());
        b.append_data(&mut h, target, fs::File::open(src)?)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_stay_inside_the_root_and_the_context() {
        assert_eq!(
            clean_absolute(Path::new("/app/../../etc")),
            Path::new("/etc")
        );
        assert_eq!(clean_absolute(Path::new("/a/./b/")), Path::new("/a/b"));
        let ctx = std::env::temp_dir().join(format!("build-ctx-{}", random_hex(6)));
        fs::create_dir_all(&ctx).unwrap();
        fs::write(ctx.join("f"), "x").unwrap();
        let inside = in_context(&ctx, "f");
        let outside = in_context(&ctx, "../../etc/passwd");
        fs::remove_dir_all(&ctx).unwrap();
        assert_eq!(inside, Some(ctx.join("f")));
        assert_eq!(outside, None);
    }
}
