//! The `supasaasy` binary: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = supasaasy::cli::Cli::parse();
    supasaasy::telemetry::init_with(cli.log_format == supasaasy::cli::LogFormat::Json);
    match supasaasy::cli::run(cli).await {
        Ok(code) => code,
        Err(e) => {
            // One line, whatever the causes hold (a database error's DETAIL and HINT included).
            eprintln!("error: {}", format!("{e:#}").replace('\n', " "));
            ExitCode::FAILURE
        }
    }
}
