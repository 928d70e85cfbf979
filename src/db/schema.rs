//! The schema a database is at, against the one this binary's migrations bring it to, and whether
//! this binary may run on it.
//!
//! Refinery refuses to run when the database holds a migration the binary does not carry, which
//! would make a rolled-back binary exit in a loop. So the version is read first: an older schema
//! is migrated (or refused when migrations are off), a newer one is run against when it says it
//! is compatible with this binary (`supasaasy.schema_compat`, migration V8), and refused with one
//! line naming both versions otherwise.

use tokio_postgres::GenericClient;

/// The newest migration a database holds, against this binary's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Schema {
    /// The database's newest migration (0 when none ran yet).
    pub database: i64,
    /// This binary's newest migration.
    pub binary: i64,
    /// The oldest binary migration the database's schema still works with.
    pub compatible_from: i64,
}

/// What this binary may do with a database's schema.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The schema is this binary's.
    Current,
    /// The schema is older: migrate it (or, with migrations off, refuse).
    Behind,
    /// The schema is newer and says this binary may run against it.
    AheadCompatible,
    /// The schema is newer and this binary may not run against it; the message says why.
    Refused(String),
}

impl Schema {
    /// What this binary may do.
    pub fn verdict(&self) -> Verdict {
        if self.database == self.binary {
            Verdict::Current
        } else if self.database < self.binary {
            Verdict::Behind
        } else if self.binary >= self.compatible_from {
            Verdict::AheadCompatible
        } else {
            Verdict::Refused(format!(
                "the database schema is at V{} and works with binaries of V{} or later; this binary \
                 is at V{}: run a newer release",
                self.database, self.compatible_from, self.binary
            ))
        }
    }

    /// Whether this binary can serve the database as it is (for `/readyz`).
    pub fn ready(&self) -> bool {
        matches!(self.verdict(), Verdict::Current | Verdict::AheadCompatible)
    }

    /// Why a binary with migrations off cannot serve a schema behind it.
    pub fn behind_message(&self) -> String {
        format!(
            "the database schema is at V{} and this binary needs V{}: run `supasaasy migrate` \
             (migrations are off)",
            self.database, self.binary
        )
    }
}

/// Reads the database's schema version and compatibility.
///
/// # Errors
///
/// A database error.
pub async fn read(
    client: &impl GenericClient,
    binary: i64,
) -> Result<Schema, tokio_postgres::Error> {
    let row = client
        .query_one(
            "SELECT to_regclass('supasaasy.schema_migrations') IS NOT NULL,
                    to_regclass('supasaasy.schema_compat') IS NOT NULL",
            &[],
        )
        .await?;
    let (migrated, compat): (bool, bool) = (row.get(0), row.get(1));
    let database = if migrated {
        client
            .query_one(
                "SELECT COALESCE(max(version), 0)::int8 FROM supasaasy.schema_migrations",
                &[],
            )
            .await?
            .get(0)
    } else {
        0
    };
    let compatible_from = if compat {
        client
            .query_one(
                "SELECT compatible_from::int8 FROM supasaasy.schema_compat",
                &[],
            )
            .await?
            .get(0)
    } else {
        database
    };
    Ok(Schema {
        database,
        binary,
        compatible_from,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn schema(database: i64, compatible_from: i64) -> Schema {
        Schema {
            database,
            binary: 8,
            compatible_from,
        }
    }

    #[test]
    fn verdicts() {
        assert_eq!(schema(8, 6).verdict(), Verdict::Current);
        assert_eq!(schema(0, 0).verdict(), Verdict::Behind);
        assert_eq!(schema(7, 6).verdict(), Verdict::Behind);
        assert_eq!(schema(9, 6).verdict(), Verdict::AheadCompatible);
        assert_eq!(schema(9, 8).verdict(), Verdict::AheadCompatible);
        let Verdict::Refused(why) = schema(10, 9).verdict() else {
            panic!("a binary older than the compatible version is refused");
        };
        assert!(
            why.contains("V10") && why.contains("V9") && why.contains("V8"),
            "{why}"
        );
        assert!(schema(9, 6).ready() && !schema(7, 6).ready() && !schema(10, 9).ready());
    }
}
