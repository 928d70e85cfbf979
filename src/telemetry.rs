//! Log output on stderr: human-readable lines, or one JSON object per line with `--log-format json`;
//! filtered by `RUST_LOG` (`info` by default; a list of `target=level` directives like
//! `supasaasy=debug,info` also works).

use std::io::IsTerminal;

use tracing_subscriber::filter::Targets;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

/// Installs the global human-readable subscriber; later calls do nothing.
pub fn init() {
    init_with(false);
}

/// Installs the global subscriber, writing JSON lines when `json`; later calls do nothing.
pub fn init_with(json: bool) {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| Targets::new().with_default(tracing::Level::INFO));
    let registry = tracing_subscriber::registry().with(filter);
    let _ = if json {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_current_span(true)
                    .with_span_list(false)
                    .with_writer(std::io::stderr),
            )
            .try_init()
    } else {
        registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(std::io::stderr().is_terminal()),
            )
            .try_init()
    };
}
