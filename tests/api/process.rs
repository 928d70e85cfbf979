//! The real binary as a child process: `supasaasy serve` spawned from a command, its log lines
//! read on a thread of their own, the address it logs, and its stop.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use serde_json::Value;

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_supasaasy");

/// A running `supasaasy serve` and its log lines.
pub struct Serve {
    pub child: Child,
    /// The address it listens on (it logs it: the configs bind port 0).
    pub addr: String,
    /// Every line it writes to stderr, as it writes them.
    pub logs: Receiver<String>,
}

/// Spawns `cmd` (a `serve` command) with its stderr piped, and waits until it logs its address.
pub fn serve(mut cmd: Command) -> Serve {
    let mut child = cmd.stderr(Stdio::piped()).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, logs) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let addr = loop {
        let line = logs
            .recv_timeout(Duration::from_secs(30))
            .expect("serve logs its address");
        if let Some(rest) = line.split("addr=").nth(1) {
            break rest.split_whitespace().next().unwrap().to_string();
        }
    };
    Serve { child, addr, logs }
}

impl Serve {
    /// GET `path` without a key; status and JSON body (null when not JSON).
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = reqwest::get(format!("http://{}{path}", self.addr))
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    /// Waits for a log line holding `text` and returns it.
    pub fn await_log(&self, text: &str) -> String {
        loop {
            let line = self
                .logs
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| panic!("no log line with {text:?}"));
            if line.contains(text) {
                return line;
            }
        }
    }

    /// Sends `signal` (`-TERM`, `-KILL`) to the process.
    pub fn signal(&self, signal: &str) {
        let pid = self.child.id().to_string();
        assert!(Command::new("kill")
            .args([signal, &pid])
            .status()
            .unwrap()
            .success());
    }

    /// Waits for the process to exit; its exit code and the log lines not read yet.
    pub async fn wait(mut self) -> (Option<i32>, Vec<String>) {
        let (status, logs) = tokio::task::spawn_blocking(move || {
            let status = self.child.wait().unwrap();
            (status, self.logs)
        })
        .await
        .unwrap();
        (status.code(), logs.try_iter().collect())
    }

    /// SIGTERM, then waits; the exit code.
    pub async fn stop(self) -> Option<i32> {
        self.signal("-TERM");
        self.wait().await.0
    }
}
