//! Colour, only where a person reads it: a terminal, with `NO_COLOR` unset.
//!
//! kubectl prints no colour at all, and scripts compare our output with its; so colour is
//! added last, to text that is complete without it, and only when the stream is a terminal
//! that wants it (anstream's choice: `NO_COLOR`, `CLICOLOR`, `CLICOLOR_FORCE`, `TERM=dumb`).
//! Piped output is then byte for byte the uncoloured text. Two touches only: the `error:` or
//! `Error from server (...)` prefix of an error in red, and the keys at the left margin of
//! `describe` and `inspect` views in bold, so the sections stand out.
//! Read next: `../error.rs`, which prints errors through [`eprint_error`].

use std::io::Write;

use anstream::{AutoStream, ColorChoice};
use clap::builder::styling::{AnsiColor, Style};

/// Does `stream` take colour (a terminal, and the environment does not refuse it)?
fn wants_colour<S: anstream::stream::RawStream>(stream: &S) -> bool {
    AutoStream::choice(stream) != ColorChoice::Never
}

/// Every line's key at the left margin (`Name:`, `Containers:`) in bold; indented lines and
/// lines without a colon as they are.
pub fn bold_keys(text: &str) -> String {
    let bold = Style::new().bold();
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    for line in text.split_inclusive('\n') {
        match line.find(':') {
            Some(end) if !line.starts_with([' ', '\t', '\n']) => {
                let (key, rest) = line.split_at(end + 1);
                out.push_str(&format!("{bold}{key}{bold:#}{rest}"));
            }
            _ => out.push_str(line),
        }
    }
    out
}

/// The error prefix (`error:`, `Error from server (NotFound):`) in red.
pub fn red_prefix(line: &str) -> String {
    let red = Style::new().fg_color(Some(AnsiColor::Red.into())).bold();
    let end = if line.starts_with("Error from server") {
        line.find("):").map(|i| i + 2)
    } else if line.starts_with("error:") {
        Some("error:".len())
    } else {
        None
    };
    match end {
        Some(end) => format!("{red}{}{red:#}{}", &line[..end], &line[end..]),
        None => line.to_string(),
    }
}

/// Write `text` to stdout, its left-margin keys bold on a terminal (see [`bold_keys`]).
pub fn emit_keyed(text: &str) -> std::io::Result<()> {
    let stdout = std::io::stdout();
    let text = if wants_colour(&stdout) {
        bold_keys(text)
    } else {
        text.to_string()
    };
    super::emit(&text)
}

/// Print one error line on stderr, its prefix red on a terminal (see [`red_prefix`]).
pub fn eprint_error(line: &str) {
    let stderr = std::io::stderr();
    let line = if wants_colour(&stderr) {
        red_prefix(line)
    } else {
        line.to_string()
    };
    let mut err = stderr.lock();
    let _ = writeln!(err, "{line}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_margin_keys_are_bold() {
        let out = bold_keys("Name:  web\n  Image:  x\nplain\n");
        assert_eq!(out, "\x1b[1mName:\x1b[0m  web\n  Image:  x\nplain\n");
    }

    #[test]
    fn error_prefixes_are_red() {
        let out = red_prefix("Error from server (NotFound): pods \"x\" not found");
        assert!(out.starts_with("\x1b["), "{out:?}");
        assert!(out.ends_with("\x1b[0m pods \"x\" not found"), "{out:?}");
        assert_eq!(red_prefix("No resources found"), "No resources found");
    }
}
