use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use tracing_subscriber::EnvFilter;

fn main() -> ExitCode {
    let cli = assent::cli::Cli::parse();
    let filter = EnvFilter::try_from_env("ASSENT_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colour only for a person at a terminal; JSON lines for log collectors.
    let logs = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match std::env::var("ASSENT_LOG_FORMAT").unwrap_or_default().as_str() {
        "" | "text" => logs.with_ansi(std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none()).init(),
        "json" => logs.json().with_current_span(false).init(),
        other => {
            eprintln!("error: ASSENT_LOG_FORMAT `{other}`: use `text` (the default) or `json`");
            return ExitCode::from(2);
        }
    }
    match assent::cli::run(cli) {
        Ok(code) => code,
        // The reader went away (`assent history --json | head -1`): stop quietly, with the
        // status of a process that SIGPIPE ended (128 + 13), as other tools do; not 0, which
        // would pass a `verify` whose findings were not all read.
        Err(e) if broken_pipe(&e) => ExitCode::from(141),
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<assent::cli::Refused>().is_some() { ExitCode::from(2) } else { ExitCode::FAILURE }
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}
