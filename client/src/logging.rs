//! Logs: every component writes its `tracing` events to stderr, leaving stdout to a program's
//! output; `RUST_LOG` selects what is logged (`info` by default). Colours (ANSI escapes) are
//! used only when stderr is a terminal, so log files and journald get plain text.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// Install the process's log subscriber. Call once, at the start of `main`.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
