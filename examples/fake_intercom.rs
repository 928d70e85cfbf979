//! Serves a fake Intercom API seeded with generated data, until SIGTERM or Ctrl-C.
//!
//! Prints one line, `INTERCOM_BASE_URL=http://127.0.0.1:PORT`, once it accepts connections.
//!
//! ```sh
//! cargo run --example fake_intercom -- --listen 127.0.0.1:12112 --contacts 1000
//! curl -H 'Authorization: Bearer ic_test_fake' 'http://127.0.0.1:12112/contacts?per_page=3'
//! ```

use std::io::{self, Write};
use std::net::SocketAddr;
use std::time::Duration;

use clap::Parser;
use supasaasy_testkit::fake_intercom::{
    FakeIntercom, IntercomCounts, IntercomData, DEFAULT_CLIENT_SECRET, DEFAULT_TOKEN,
};
use tokio::signal::unix::{signal, SignalKind};

/// A fake Intercom API for trying supasaasy without an Intercom workspace.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:0")]
    listen: SocketAddr,
    /// Companies to generate.
    #[arg(long, default_value_t = 50)]
    companies: usize,
    /// Contacts to generate (every fourth is a lead).
    #[arg(long, default_value_t = 300)]
    contacts: usize,
    /// Admins to generate.
    #[arg(long, default_value_t = 5)]
    admins: usize,
    /// Conversations to generate.
    #[arg(long, default_value_t = 200)]
    conversations: usize,
    /// Parts per conversation.
    #[arg(long, default_value_t = 4)]
    parts: usize,
    /// The access token clients must send.
    #[arg(long, default_value = DEFAULT_TOKEN)]
    token: String,
    /// The client secret webhook signatures are keyed by.
    #[arg(long, default_value = DEFAULT_CLIENT_SECRET)]
    client_secret: String,
    /// Requests allowed per rate-limit window (0: the fake's generous default).
    #[arg(long, default_value_t = 0)]
    rate_limit: u64,
    /// The rate-limit window, in seconds.
    #[arg(long, default_value_t = 10)]
    rate_window_secs: u64,
    /// Delay every answer by this many milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
}

#[tokio::main]
async fn main() -> io::Result<()> {
    let args = Args::parse();
    let counts = IntercomCounts {
        companies: args.companies,
        contacts: args.contacts,
        admins: args.admins,
        conversations: args.conversations,
        parts_per_conversation: args.parts,
    };
    let data = IntercomData::generate(&counts)
        .with_token(args.token)
        .with_client_secret(args.client_secret);
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    let intercom = FakeIntercom::start_on(args.listen, data).await?;
    intercom.set_latency(Duration::from_millis(args.latency_ms));
    if args.rate_limit > 0 {
        intercom.set_rate_limit(args.rate_limit, Duration::from_secs(args.rate_window_secs));
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "INTERCOM_BASE_URL={}", intercom.base_url())?;
    stdout.flush()?;
    drop(stdout);
    tokio::select! {
        _ = terminate.recv() => {}
        _ = interrupt.recv() => {}
    }
    intercom.shutdown().await;
    Ok(())
}
