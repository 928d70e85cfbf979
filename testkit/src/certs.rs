//! Certificates made for a test: a certificate authority and server certificates it signs, written
//! as PEM files by the `openssl` command (as an operator would make them), for a Postgres that
//! speaks TLS ([`crate::pg::TestPostgres::start_tls`]).
//!
//! Keys are P-256, certificates valid for a day. Nothing here is secret: the files live in a
//! directory of their own, removed when the [`TestCa`] is dropped.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// A certificate authority of one test.
#[derive(Debug)]
pub struct TestCa {
    /// Holds the CA's files and every certificate it signs.
    dir: PathBuf,
    /// The CA's name, also its files' stem.
    name: String,
}

/// A server certificate and its key.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// The certificate, PEM.
    pub cert: PathBuf,
    /// Its private key, PEM.
    pub key: PathBuf,
}

impl TestCa {
    /// Makes a self-signed CA named `name` in a fresh directory.
    ///
    /// # Errors
    ///
    /// When `openssl` is missing or fails (the error carries its output).
    pub fn new(name: &str) -> io::Result<TestCa> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "supasaasy-ca-{}-{}-{name}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        fs::create_dir_all(&dir)?;
        let ca = TestCa {
            dir,
            name: name.to_owned(),
        };
        let key = ca.path(&format!("{name}.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "1",
            "-subj",
            &format!("/CN={name}"),
            "-addext",
            "basicConstraints=critical,CA:TRUE",
            "-addext",
            "keyUsage=critical,keyCertSign,cRLSign",
            "-keyout",
            path_str(&key)?,
            "-out",
            path_str(&ca.cert())?,
        ])?;
        Ok(ca)
    }

    /// The CA's certificate, PEM: what a client names as `sslrootcert`.
    pub fn cert(&self) -> PathBuf {
        self.path(&format!("{}.crt", self.name))
    }

    /// Makes a server certificate for `dns_names`, signed by this CA.
    ///
    /// # Errors
    ///
    /// When `openssl` fails.
    pub fn server_cert(&self, stem: &str, dns_names: &[&str]) -> io::Result<ServerCert> {
        let key = self.path(&format!("{stem}.key"));
        let csr = self.path(&format!("{stem}.csr"));
        let cert = self.path(&format!("{stem}.crt"));
        let ext = self.path(&format!("{stem}.ext"));
        let names: Vec<String> = dns_names.iter().map(|n| format!("DNS:{n}")).collect();
        fs::write(
            &ext,
            format!(
                "subjectAltName={}\nextendedKeyUsage=serverAuth\nbasicConstraints=CA:FALSE\n",
                names.join(",")
            ),
        )?;
        openssl(&[
            "req",
            "-new",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-subj",
            &format!("/CN={}", dns_names.first().copied().unwrap_or(stem)),
            "-keyout",
            path_str(&key)?,
            "-out",
            path_str(&csr)?,
        ])?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            path_str(&csr)?,
            "-CA",
            path_str(&self.cert())?,
            "-CAkey",
            path_str(&self.path(&format!("{}.key", self.name)))?,
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            path_str(&ext)?,
            "-out",
            path_str(&cert)?,
        ])?;
        Ok(ServerCert { cert, key })
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }
}

impl Drop for TestCa {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn path_str(path: &Path) -> io::Result<&str> {
    path.to_str()
        .ok_or_else(|| io::Error::other(format!("{} is not UTF-8", path.display())))
}

fn openssl(args: &[&str]) -> io::Result<()> {
    let out = Command::new("openssl")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| io::Error::new(e.kind(), format!("running openssl: {e}")))?;
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "openssl {} failed ({}): {}",
        args.first().copied().unwrap_or(""),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    )))
}
