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
//! `ADD`/`USER`/`ARG`/`LABEL`. Read next: `overlay.rs` (commit).

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
    #[error("Dockerfile line {line}: {message}")]
    Parse { line: usize, message: String },
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

/// A command as a Dockerfile writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandForm {
    /// `RUN echo hi`: run by `/bin/sh -c`.
    Shell(String),
    /// `RUN ["echo", "hi"]`: run as it is.
    Exec(Vec<String>),
}

impl CommandForm {
    /// The argument vector the form stands for.
    pub fn argv(&self) -> Vec<String> {
        match self {
            CommandForm::Shell(s) => vec!["/bin/sh".into(), "-c".into(), s.clone()],
            CommandForm::Exec(v) => v.clone(),
        }
    }

    fn parse(text: &str) -> Self {
        let t = text.trim();
        match serde_json::from_str::<Vec<String>>(t) {
            Ok(v) if t.starts_with('[') => CommandForm::Exec(v),
            _ => CommandForm::Shell(t.to_string()),
        }
    }
}

/// One instruction of the subset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Instruction {
    /// The base image (`scratch`: none).
    From(String),
    Run(CommandForm),
    /// Sources in the build context, and the destination in the image.
    Copy {
        sources: Vec<String>,
        dest: String,
    },
    Env(Vec<(String, String)>),
    Workdir(String),
    Cmd(CommandForm),
    Entrypoint(CommandForm),
}

/// An instruction and where it was.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Step {
    /// The first line of the instruction (1-based).
    pub line: usize,
    /// The instruction as written, continuation lines joined (for the progress output).
    pub text: String,
    pub instruction: Instruction,
}

/// Parse a Dockerfile: comments (`#` first on a line) and blank lines dropped, lines ending
/// in `\` joined with the next, keywords in any case; it must start with `FROM`.
pub fn parse(text: &str) -> Result<Vec<Step>, BuildError> {
    let mut steps = Vec::new();
    let mut pending: Option<(usize, String)> = None;
    for (i, raw) in text.lines().enumerate() {
        let trimmed = raw.trim();
        if trimmed.starts_with('#') || trimmed.is_empty() {
            continue;
        }
        let (line, mut acc) = pending.take().unwrap_or((i + 1, String::new()));
        match raw.trim_end().strip_suffix('\\') {
            Some(part) => {
                acc.push_str(part);
                pending = Some((line, acc));
            }
            None => {
                acc.push_str(raw);
                if !acc.trim().is_empty() {
                    steps.push(parse_instruction(line, acc.trim())?);
                }
            }
        }
    }
    if let Some((line, acc)) = pending {
        steps.push(parse_instruction(line, acc.trim())?);
    }
    match steps.first() {
        None => Err(parse_err(1, "the Dockerfile has no instructions")),
        Some(s) if !matches!(s.instruction, Instruction::From(_)) => {
            Err(parse_err(s.line, "the first instruction must be FROM"))
        }
        _ => Ok(steps),
    }
}

fn parse_err(line: usize, message: impl Into<String>) -> BuildError {
    BuildError::Parse {
        line,
        message: message.into(),
    }
}

fn parse_instruction(line: usize, text: &str) -> Result<Step, BuildError> {
    let (keyword, rest) = text.split_once(char::is_whitespace).unwrap_or((text, ""));
    let rest = rest.trim();
    let err = |m: &str| parse_err(line, format!("{}: {m}", keyword.to_uppercase()));
    if rest.is_empty() {
        return Err(err("expected arguments"));
    }
    if rest.starts_with("--") && !keyword.eq_ignore_ascii_case("run") {
        return Err(err(
            "flags (--from, --chown, --platform...) are not supported",
        ));
    }
    let instruction = match keyword.to_ascii_uppercase().as_str() {
        "FROM" => {
            let words: Vec<&str> = rest.split_whitespace().collect();
            match words.as_slice() {
                [image] => Instruction::From(image.to_string()),
                [image, as_, _] if as_.eq_ignore_ascii_case("as") => {
                    Instruction::From(image.to_string())
                }
                _ => return Err(err("expected FROM IMAGE [AS NAME]")),
            }
        }
        "RUN" => Instruction::Run(CommandForm::parse(rest)),
        "CMD" => Instruction::Cmd(CommandForm::parse(rest)),
        "ENTRYPOINT" => Instruction::Entrypoint(CommandForm::parse(rest)),
        "WORKDIR" => Instruction::Workdir(rest.to_string()),
        "ENV" => Instruction::Env(parse_env(rest).map_err(&err)?),
        "COPY" => {
            let mut words = match CommandForm::parse(rest) {
                CommandForm::Exec(v) => v,
                CommandForm::Shell(_) => split_words(rest).map_err(&err)?,
            };
            if words.len() < 2 {
                return Err(err("expected COPY SOURCE... DEST"));
            }
            let dest = words.pop().expect("two words");
            Instruction::Copy {
                sources: words,
                dest,
            }
        }
        other => {
            return Err(parse_err(
                line,
                format!(
                    "unsupported instruction {other} (this builder knows FROM, RUN, COPY, ENV, \
                     WORKDIR, CMD and ENTRYPOINT)"
                ),
            ))
        }
    };
    Ok(Step {
        line,
        text: text.split_whitespace().collect::<Vec<_>>().join(" "),
        instruction,
    })
}

/// `ENV K=V K2="a b"`, or the old form `ENV K a b` (one variable, the rest of the line).
fn parse_env(rest: &str) -> Result<Vec<(String, String)>, &'static str> {
    let words = split_words(rest)?;
    if !words[0].contains('=') {
        let (k, v) = rest
            .split_once(char::is_whitespace)
            .ok_or("expected KEY=VALUE")?;
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some((k, v)) if !k.is_empty() => Ok((k.to_string(), v.to_string())),
            _ => Err("expected KEY=VALUE"),
        })
        .collect()
}

/// Words separated by blanks, with `"..."`, `'...'` and `\` quoting as the shell's.
fn split_words(s: &str) -> Result<Vec<String>, &'static str> {
    let mut words = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some(q) if q == c => break,
                        Some('\\') if c == '"' => cur.extend(chars.next()),
                        Some(x) => cur.push(x),
                        None => return Err("unterminated quote"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        words.push(cur);
    }
    Ok(words)
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
                (_, None) => return Err(parse_err(step.line, "a second FROM is not supported")),
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
        let cur = current.ok_or_else(|| parse_err(1, "the Dockerfile has no instructions"))?;
        let image = self
            .images
            .resolve(&cur.name)
            .map_err(|e| parse_err(0, e.to_string()))?;
        let name = tag.map_or_else(|| format!("build-{}", short_id(&image)), str::to_string);
        self.images
            .tag(&name, &image.manifest_digest)
            .map_err(|e| parse_err(0, e.to_string()))?;
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
            let path = in_context(context, src).ok_or_else(|| {
                parse_err(line, format!("COPY {src:?}: outside the build context"))
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

    fn instructions(text: &str) -> Vec<Instruction> {
        parse(text)
            .unwrap()
            .into_iter()
            .map(|s| s.instruction)
            .collect()
    }

    #[test]
    fn a_dockerfile_with_comments_and_continuations_parses() {
        let text = "# syntax is ignored\nFROM busybox AS base\n\n  # a comment\nrun echo a \\\n    && echo b\nCOPY hello.txt /app/\nENV A=1 B=\"two words\"\nENV C three words\nWORKDIR /app\nCMD [\"cat\", \"/app/hello.txt\"]\nENTRYPOINT echo\n";
        let steps = parse(text).unwrap();
        assert_eq!(steps[1].line, 5);
        assert_eq!(steps[1].text, "run echo a && echo b");
        assert_eq!(
            steps.into_iter().map(|s| s.instruction).collect::<Vec<_>>(),
            [
                Instruction::From("busybox".into()),
                Instruction::Run(CommandForm::Shell("echo a     && echo b".into())),
                Instruction::Copy {
                    sources: vec!["hello.txt".into()],
                    dest: "/app/".into()
                },
                Instruction::Env(vec![
                    ("A".into(), "1".into()),
                    ("B".into(), "two words".into())
                ]),
                Instruction::Env(vec![("C".into(), "three words".into())]),
                Instruction::Workdir("/app".into()),
                Instruction::Cmd(CommandForm::Exec(vec![
                    "cat".into(),
                    "/app/hello.txt".into()
                ])),
                Instruction::Entrypoint(CommandForm::Shell("echo".into())),
            ]
        );
    }

    #[test]
    fn what_the_subset_lacks_is_refused_with_its_line() {
        let err = |t: &str| parse(t).unwrap_err().to_string();
        assert_eq!(
            err("FROM busybox\nRUN true\nADD x /x\n"),
            "Dockerfile line 3: unsupported instruction ADD (this builder knows FROM, RUN, COPY, \
             ENV, WORKDIR, CMD and ENTRYPOINT)"
        );
        assert_eq!(
            err("RUN true\n"),
            "Dockerfile line 1: the first instruction must be FROM"
        );
        assert_eq!(
            err("FROM busybox\nCOPY --chown=1 a /a\n"),
            "Dockerfile line 2: COPY: flags (--from, --chown, --platform...) are not supported"
        );
        assert_eq!(
            err("FROM busybox\nCOPY a\n"),
            "Dockerfile line 2: COPY: expected COPY SOURCE... DEST"
        );
        assert_eq!(
            err("FROM busybox\nENV A=\"x\n"),
            "Dockerfile line 2: ENV: unterminated quote"
        );
        assert_eq!(
            err("# only\n"),
            "Dockerfile line 1: the Dockerfile has no instructions"
        );
    }

    #[test]
    fn commands_have_a_shell_and_an_exec_form() {
        assert_eq!(
            instructions("FROM scratch\nCMD [\"sh\"]\nCMD sh -c 'x'\n")[1..],
            [
                Instruction::Cmd(CommandForm::Exec(vec!["sh".into()])),
                Instruction::Cmd(CommandForm::Shell("sh -c 'x'".into())),
            ]
        );
        assert_eq!(
            CommandForm::Shell("echo hi".into()).argv(),
            ["/bin/sh", "-c", "echo hi"]
        );
    }

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
