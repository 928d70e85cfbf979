//! Runs a throwaway Postgres cluster for as long as this process lives.
//!
//! Prints one line, `DATABASE_URL=postgres://postgres@127.0.0.1:PORT/postgres`, then waits for
//! SIGTERM, Ctrl-C, or (when stdin is a pipe) the end of stdin, stops the cluster and exits 0. If
//! the process is killed outright, the cluster's watchdog removes it within about a second.
//!
//! ```sh
//! cargo run --example throwaway_postgres
//! ```

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::FileTypeExt;

use supasaasy_testkit::pg::TestPostgres;
use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::oneshot;

fn main() -> io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let pg = TestPostgres::start()?;
    runtime.block_on(async {
        // Listen before announcing, so a caller may signal as soon as it has read the URL.
        let mut terminate = signal(SignalKind::terminate())?;
        let mut interrupt = signal(SignalKind::interrupt())?;
        let stdin_closed = watch_stdin();
        let mut stdout = io::stdout().lock();
        writeln!(stdout, "DATABASE_URL={}", pg.url("postgres"))?;
        stdout.flush()?;
        drop(stdout);
        tokio::select! {
            _ = terminate.recv() => {}
            _ = interrupt.recv() => {}
            _ = async {
                match stdin_closed {
                    Some(closed) => { let _ = closed.await; }
                    None => std::future::pending().await,
                }
            } => {}
        }
        io::Result::Ok(())
    })?;
    pg.stop()
}

/// Resolves when stdin reaches its end, if stdin is a pipe or socket. A terminal or /dev/null is
/// not watched: /dev/null ends at once (a script's background job), and reading a terminal from
/// the background stops the process.
fn watch_stdin() -> Option<oneshot::Receiver<()>> {
    let kind = fs::metadata("/proc/self/fd/0").ok()?.file_type();
    if !(kind.is_fifo() || kind.is_socket()) {
        return None;
    }
    let (closed, rx) = oneshot::channel();
    std::thread::spawn(move || {
        let mut stdin = io::stdin().lock();
        let mut buf = [0u8; 4096];
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    Some(rx)
}
