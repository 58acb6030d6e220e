//! The Dockerfile subset `build` takes, parsed into typed steps before anything runs: a
//! Dockerfile is a list of instructions, one per logical line (`\` at a line's end joins the
//! next; `#` starts a comment line), each a keyword and its arguments. `RUN`, `CMD` and
//! `ENTRYPOINT` take a command in *shell form* (`RUN echo hi`, run as `/bin/sh -c "echo hi"`)
//! or *exec form* (`CMD ["sh"]`, a JSON array run as it is). Known: `FROM`, `RUN`, `COPY`,
//! `ENV`, `WORKDIR`, `CMD`, `ENTRYPOINT`; anything else is an error naming its line.
//! Read next: `mod.rs` (running the steps).

/// A Dockerfile line this parser does not take.
#[derive(Debug, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct ParseError {
    /// The first line of the instruction (1-based).
    pub line: usize,
    pub message: String,
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

    /// The exec form when `text` is a JSON array of strings, else the shell form.
    pub fn parse(text: &str) -> Self {
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
pub fn parse(text: &str) -> Result<Vec<Step>, ParseError> {
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
    if let Some(s) = steps
        .iter()
        .skip(1)
        .find(|s| matches!(s.instruction, Instruction::From(_)))
    {
        return Err(parse_err(
            s.line,
            "a second FROM (a multi-stage build) is not supported",
        ));
    }
    match steps.first() {
        None => Err(parse_err(1, "the Dockerfile has no instructions")),
        Some(s) if !matches!(s.instruction, Instruction::From(_)) => {
            Err(parse_err(s.line, "the first instruction must be FROM"))
        }
        _ => Ok(steps),
    }
}

fn parse_err(line: usize, message: impl Into<String>) -> ParseError {
    ParseError {
        line,
        message: message.into(),
    }
}

fn parse_instruction(line: usize, text: &str) -> Result<Step, ParseError> {
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
            err("FROM busybox\nRUN true\nFROM busybox AS two\n"),
            "Dockerfile line 3: a second FROM (a multi-stage build) is not supported"
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
}
