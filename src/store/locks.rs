//! Session advisory locks held across statements and transactions: the lock of an exclusive
//! resource's run, and of giving an app's rows their account. A lock lives on one pooled
//! connection. Released, the connection goes back to the pool; dropped without release (a panic, a
//! cancelled future, a broken connection), the connection is taken out of the pool and closed,
//! and the lock goes with its session, so a lock never outlives its holder on a reused connection.

use deadpool_postgres::{Object, Pool};

use super::StoreError;

/// A session advisory lock on `key`, held until [`SessionLock::release`] or drop.
pub struct SessionLock {
    client: Option<Object>,
    key: String,
}

impl SessionLock {
    /// Takes the lock on `key` if no session holds it.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the database does not answer.
    pub async fn try_take(pool: &Pool, key: String) -> Result<Option<SessionLock>, StoreError> {
        let client = pool.get().await?;
        let row = client
            .query_one(
                "SELECT pg_try_advisory_lock(hashtextextended($1, 0))",
                &[&key],
            )
            .await?;
        let client = Some(client);
        Ok(row.get::<_, bool>(0).then_some(SessionLock { client, key }))
    }

    /// Takes the lock on `key`, waiting for the session that holds it.
    ///
    /// # Errors
    ///
    /// A [`StoreError`] when the database does not answer.
    pub async fn take(pool: &Pool, key: String) -> Result<SessionLock, StoreError> {
        let client = pool.get().await?;
        client
            .execute("SELECT pg_advisory_lock(hashtextextended($1, 0))", &[&key])
            .await?;
        Ok(SessionLock {
            client: Some(client),
            key,
        })
    }

    /// The connection holding the lock, for statements run under it.
    pub fn client(&self) -> &Object {
        self.client
            .as_ref()
            .expect("held until released or dropped")
    }

    /// Releases the lock and gives the connection back to the pool.
    pub async fn release(mut self) {
        let Some(client) = self.client.take() else {
            return;
        };
        let unlocked = client
            .query_one(
                "SELECT pg_advisory_unlock(hashtextextended($1, 0))",
                &[&self.key],
            )
            .await;
        if let Err(e) = unlocked {
            // The connection is broken, and its session's locks went with it; don't reuse it.
            tracing::debug!(error = %e, "advisory lock not released explicitly");
            drop(Object::take(client));
        }
    }
}

impl Drop for SessionLock {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            tracing::warn!(
                lock = %self.key,
                "a lock's holder ended without releasing it; its connection is closed, which releases it"
            );
            drop(Object::take(client));
        }
    }
}
