//! Where the database is and how to reach it: a `DATABASE_URL` read once, its libpq TLS settings
//! (`sslmode`, `sslrootcert`) taken out and turned into a rustls connector, the rest handed to
//! tokio-postgres, which knows neither `verify-ca`, `verify-full` nor `sslrootcert`.
//!
//! Both forms libpq takes are read: a URL (`postgres://u@h/db?sslmode=verify-full`) and key-value
//! pairs (`host=h dbname=db sslmode=require`). The modes mean what they mean to libpq, `prefer`
//! by default, with two choices of ours: `verify-ca` and `verify-full` without `sslrootcert` trust
//! the platform's roots (libpq would look for `~/.postgresql/root.crt`), and `sslrootcert=system`
//! names them explicitly (and, as in libpq, asks for `verify-full`). `require` with a root
//! certificate file checks the chain, as libpq's does.

use std::fmt;
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;
use tokio_postgres::config::SslMode as PgSslMode;
use tokio_postgres::tls::MakeTlsConnect;
use tokio_postgres::{Client, Connection, Socket};

use super::tls::{MakeRustls, Trust};

/// How long opening a database connection may take (unless the URL sets `connect_timeout`).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// libpq's `sslmode`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SslMode {
    /// No TLS.
    Disable,
    /// TLS when the server offers it, any certificate.
    Prefer,
    /// TLS, any certificate (the chain is checked when `sslrootcert` names a file).
    Require,
    /// TLS, a certificate chained to the roots.
    VerifyCa,
    /// TLS, a certificate chained to the roots that names the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Option<SslMode> {
        Some(match value {
            "disable" => SslMode::Disable,
            "prefer" => SslMode::Prefer,
            "require" => SslMode::Require,
            "verify-ca" => SslMode::VerifyCa,
            "verify-full" => SslMode::VerifyFull,
            _ => return None,
        })
    }

    /// The name libpq gives the mode.
    pub fn as_str(self) -> &'static str {
        match self {
            SslMode::Disable => "disable",
            SslMode::Prefer => "prefer",
            SslMode::Require => "require",
            SslMode::VerifyCa => "verify-ca",
            SslMode::VerifyFull => "verify-full",
        }
    }
}

/// Why a database URL cannot be used; never holds the password.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

/// A database to connect to: tokio-postgres's settings and the TLS that goes with them.
#[derive(Clone)]
pub struct Target {
    /// Host, port, user, password, database and the rest, TLS settings aside.
    pg: tokio_postgres::Config,
    /// Makes each connection's TLS session; unused with `sslmode=disable`.
    tls: MakeRustls,
    /// As asked for (or `prefer`).
    ssl_mode: SslMode,
}

/// A connection tokio-postgres drives, TLS or not.
pub type PgConnection = Connection<Socket, <MakeRustls as MakeTlsConnect<Socket>>::Stream>;

impl Target {
    /// Reads a libpq connection URL or key-value string.
    ///
    /// # Errors
    ///
    /// When it does not parse, `sslmode` is not one of libpq's, or `sslrootcert` cannot be read or
    /// holds no certificate. The message names the setting and never the password.
    pub fn parse(url: &str) -> Result<Target, TargetError> {
        let (rest, ssl) = take_ssl_settings(url)?;
        let mut pg: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| TargetError(format!("the database URL does not parse: {e}")))?;
        if pg.get_connect_timeout().is_none() {
            pg.connect_timeout(CONNECT_TIMEOUT);
        }
        let system = ssl.rootcert.as_deref() == Some("system");
        let ssl_mode = match ssl.mode.as_deref() {
            None if system => SslMode::VerifyFull,
            None => SslMode::Prefer,
            Some(value) => SslMode::parse(value).ok_or_else(|| {
                TargetError(format!(
                    "sslmode {value:?} is not one of disable, prefer, require, verify-ca, verify-full"
                ))
            })?,
        };
        if system && ssl_mode != SslMode::VerifyFull {
            return Err(TargetError(format!(
                "sslrootcert=system needs sslmode=verify-full, not {}",
                ssl_mode.as_str()
            )));
        }
        let roots = || match ssl.rootcert.as_deref() {
            None | Some("system") => Ok(platform_roots()),
            Some(path) => roots_from_file(path),
        };
        let trust = match ssl_mode {
            SslMode::Disable | SslMode::Prefer => Trust::Any,
            SslMode::Require if ssl.rootcert.is_none() => Trust::Any,
            SslMode::Require | SslMode::VerifyCa => Trust::Chain(roots()?),
            SslMode::VerifyFull => Trust::Full(roots()?),
        };
        // As libpq: a Unix socket is local and never encrypted, whatever the sslmode.
        let hosts = pg.get_hosts();
        let unix_only = !hosts.is_empty()
            && hosts
                .iter()
                .all(|h| matches!(h, tokio_postgres::config::Host::Unix(_)));
        pg.ssl_mode(match ssl_mode {
            _ if unix_only => PgSslMode::Disable,
            SslMode::Disable => PgSslMode::Disable,
            SslMode::Prefer => PgSslMode::Prefer,
            _ => PgSslMode::Require,
        });
        let tls = MakeRustls::new(trust)
            .map_err(|e| TargetError(format!("cannot set up TLS for the database: {e}")))?;
        Ok(Target { pg, tls, ssl_mode })
    }

    /// The `sslmode` in effect.
    pub fn ssl_mode(&self) -> SslMode {
        self.ssl_mode
    }

    /// tokio-postgres's settings (TLS aside).
    pub fn pg_config(&self) -> &tokio_postgres::Config {
        &self.pg
    }

    /// The TLS connector for pooled connections.
    pub fn tls(&self) -> MakeRustls {
        self.tls.clone()
    }

    /// Opens one connection, leaving the caller to drive it (to read notifications).
    ///
    /// # Errors
    ///
    /// When the database cannot be reached, refuses us, or its certificate is refused.
    pub async fn connect_raw(&self) -> Result<(Client, PgConnection), tokio_postgres::Error> {
        self.pg.connect(self.tls.clone()).await
    }

    /// Opens one connection, driven on a background task.
    ///
    /// # Errors
    ///
    /// As [`Target::connect_raw`].
    pub async fn connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            if let Err(e) = connection.await {
                tracing::debug!(error = %e, "database connection closed");
            }
        });
        Ok(client)
    }
}

/// Host, port, database and `sslmode`, for messages: never the password.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let hosts: Vec<String> = self
            .pg
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self.pg.get_ports().first().copied().unwrap_or(5432);
        write!(
            f,
            "{}:{port}/{} (sslmode={})",
            hosts.join(","),
            self.pg.get_dbname().unwrap_or(""),
            self.ssl_mode.as_str()
        )
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({self})")
    }
}

/// The TLS settings of a connection string, as written.
#[derive(Debug, Default, PartialEq, Eq)]
struct SslSettings {
    mode: Option<String>,
    rootcert: Option<String>,
}

impl SslSettings {
    /// Takes `key = value` when the key is one of ours; false when it is not.
    fn take(&mut self, key: &str, value: String) -> bool {
        match key {
            "sslmode" => self.mode = Some(value),
            "sslrootcert" => self.rootcert = Some(value),
            _ => return false,
        }
        true
    }
}

/// Splits the TLS settings out of a connection string; the rest is left as written.
fn take_ssl_settings(url: &str) -> Result<(String, SslSettings), TargetError> {
    let mut ssl = SslSettings::default();
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let Some((base, query)) = url.split_once('?') else {
            return Ok((url.to_owned(), ssl));
        };
        let kept: Vec<&str> = query
            .split('&')
            .filter(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                !ssl.take(key, percent_decode(value))
            })
            .collect();
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, ssl));
    }
    let mut rest = String::with_capacity(url.len());
    let mut pairs = KeyValues { text: url, at: 0 };
    let mut copied = 0;
    while let Some((start, key, value)) = pairs.next_pair()? {
        if ssl.take(&key, value) {
            rest.push_str(&url[copied..start]);
            copied = pairs.at;
        }
    }
    rest.push_str(&url[copied..]);
    Ok((rest, ssl))
}

/// libpq's `key=value key='quoted \' value'` syntax, read pair by pair.
struct KeyValues<'a> {
    text: &'a str,
    at: usize,
}

impl KeyValues<'_> {
    /// The next pair: where it starts, its key, its value unquoted.
    fn next_pair(&mut self) -> Result<Option<(usize, String, String)>, TargetError> {
        let bytes = self.text.as_bytes();
        let skip_space = |mut i: usize| {
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
            i
        };
        let start = skip_space(self.at);
        if start == bytes.len() {
            self.at = start;
            return Ok(None);
        }
        let mut i = start;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = self.text[start..i].to_owned();
        i = skip_space(i);
        if bytes.get(i) != Some(&b'=') {
            return Err(TargetError(format!(
                "the database URL does not parse: {key:?} has no value"
            )));
        }
        i = skip_space(i + 1);
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        let mut value = Vec::new();
        loop {
            match bytes.get(i) {
                None if quoted => {
                    return Err(TargetError(
                        "the database URL does not parse: a quote is never closed".into(),
                    ))
                }
                None => break,
                Some(b'\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if !quoted && c.is_ascii_whitespace() => break,
                Some(b'\\') if i + 1 < bytes.len() => {
                    value.push(bytes[i + 1]);
                    i += 2;
                }
                Some(&c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        self.at = i;
        Ok(Some((
            start,
            key,
            String::from_utf8_lossy(&value).into_owned(),
        )))
    }
}

fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The platform's trusted roots (`/etc/ssl/certs` and the like), or Mozilla's when it has none
/// (a container image without a CA bundle).
fn platform_roots() -> RootCertStore {
    let mut roots = RootCertStore::empty();
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if roots.is_empty() {
        roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    }
    roots
}

fn roots_from_file(path: &str) -> Result<RootCertStore, TargetError> {
    let pem = std::fs::read(path)
        .map_err(|e| TargetError(format!("sslrootcert {path}: cannot read it: {e}")))?;
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert
            .map_err(|e| TargetError(format!("sslrootcert {path}: not a PEM certificate: {e}")))?;
        roots.add(cert).map_err(|e| {
            TargetError(format!("sslrootcert {path}: a certificate is refused: {e}"))
        })?;
    }
    if roots.is_empty() {
        return Err(TargetError(format!(
            "sslrootcert {path}: holds no PEM certificate"
        )));
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(url: &str) -> (String, SslSettings) {
        take_ssl_settings(url).expect("parses")
    }

    #[test]
    fn url_settings_are_taken_out_and_the_rest_kept() {
        let (rest, ssl) = split(
            "postgres://u:p@h:5/db?sslmode=verify-full&application_name=x&sslrootcert=%2Fca.pem",
        );
        assert_eq!(rest, "postgres://u:p@h:5/db?application_name=x");
        assert_eq!(ssl.mode.as_deref(), Some("verify-full"));
        assert_eq!(ssl.rootcert.as_deref(), Some("/ca.pem"));
        let (rest, ssl) = split("postgresql://h/db?sslmode=require");
        assert_eq!(rest, "postgresql://h/db");
        assert_eq!(ssl.mode.as_deref(), Some("require"));
        assert_eq!(split("postgres://h/db").1, SslSettings::default());
    }

    #[test]
    fn key_value_settings_are_taken_out_and_the_rest_kept() {
        let (rest, ssl) =
            split("host=h  sslmode = 'verify-ca' dbname=db sslrootcert='/a b\\'c.pem' user=u");
        assert_eq!(rest, "host=h   dbname=db  user=u");
        assert_eq!(ssl.mode.as_deref(), Some("verify-ca"));
        assert_eq!(ssl.rootcert.as_deref(), Some("/a b'c.pem"));
        assert!(take_ssl_settings("host=h sslmode").is_err());
        assert!(take_ssl_settings("host=h sslmode='require").is_err());
    }

    #[test]
    fn modes_follow_libpq() {
        let target = |url: &str| Target::parse(url).map(|t| t.ssl_mode());
        assert_eq!(target("postgres://h/db").unwrap(), SslMode::Prefer);
        assert_eq!(
            target("postgres://h/db?sslmode=disable").unwrap(),
            SslMode::Disable
        );
        assert_eq!(
            target("host=h sslmode=verify-full").unwrap(),
            SslMode::VerifyFull
        );
        assert_eq!(
            target("postgres://h/db?sslrootcert=system").unwrap(),
            SslMode::VerifyFull
        );
        let err = target("postgres://h/db?sslmode=verify-ca&sslrootcert=system").unwrap_err();
        assert!(err.to_string().contains("sslrootcert=system"), "{err}");
        let err = target("postgres://u:hunter2@h/db?sslmode=allow").unwrap_err();
        assert!(err.to_string().contains("\"allow\""), "{err}");
        assert!(!err.to_string().contains("hunter2"));
    }

    #[test]
    fn an_unreadable_or_empty_root_file_is_named() {
        let err = Target::parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("sslrootcert /nonexistent.pem: cannot read it"),
            "{err}"
        );
        let path = std::env::temp_dir().join(format!("empty-{}.pem", std::process::id()));
        std::fs::write(&path, "not a certificate\n").unwrap();
        let err = Target::parse(&format!(
            "postgres://h/db?sslmode=require&sslrootcert={}",
            path.display()
        ))
        .unwrap_err()
        .to_string();
        std::fs::remove_file(&path).unwrap();
        assert!(err.contains("holds no PEM certificate"), "{err}");
        // `prefer` and `disable` never read it, as libpq.
        assert!(
            Target::parse("postgres://h/db?sslmode=prefer&sslrootcert=/nonexistent.pem").is_ok()
        );
    }

    #[test]
    fn display_never_shows_the_password() {
        let target = Target::parse("postgres://u:hunter2@db.example:6543/app?sslmode=require")
            .expect("parses");
        let shown = format!("{target} {target:?}");
        assert!(
            shown.contains("db.example:6543/app (sslmode=require)"),
            "{shown}"
        );
        assert!(!shown.contains("hunter2"));
    }
}
