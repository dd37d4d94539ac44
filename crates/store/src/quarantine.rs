//! Quarantines of the repair loop guard: (path, drift kind) pairs goguard stopped repairing
//! because something kept undoing its repairs. Stored so a restart does not end them early.
//!
//! Plain storage: the guard (goguard-policy) decides when a quarantine starts and ends;
//! this module only keeps the rows. Times are unix seconds as `f64`.

use rusqlite::params;

use crate::error::{Result, StoreError};
use crate::store::Store;

/// One stored quarantine.
#[derive(Debug, Clone, PartialEq)]
pub struct Quarantine {
    /// Absolute path of the quarantined entry.
    pub path: String,
    /// Drift kind name (`foreign-owner`, ...).
    pub kind: String,
    /// The cache root holding it.
    pub root: String,
    /// When it started.
    pub since: f64,
    /// When it ends.
    pub until: f64,
}

impl Store {
    /// Records (or extends) a quarantine.
    pub fn put_quarantine(&mut self, q: &Quarantine) -> Result<()> {
        if !(q.since.is_finite() && q.until.is_finite()) {
            return Err(StoreError::InvalidArgument {
                name: "until",
                reason: format!("{}..{} is not a finite interval", q.since, q.until),
            });
        }
        self.conn
            .prepare_cached(
                "INSERT INTO quarantine (path, kind, root, since, until) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (path, kind) DO UPDATE SET root = ?3, since = ?4, until = ?5",
            )
            .and_then(|mut s| s.execute(params![q.path, q.kind, q.root, q.since, q.until]))
            .map(drop)
            .map_err(self.err("recording a quarantine"))
    }

    /// Ends a quarantine early (a forced repair); returns whether one was stored.
    pub fn delete_quarantine(&mut self, path: &str, kind: &str) -> Result<bool> {
        self.conn
            .prepare_cached("DELETE FROM quarantine WHERE path = ?1 AND kind = ?2")
            .and_then(|mut s| s.execute(params![path, kind]))
            .map(|n| n > 0)
            .map_err(self.err("ending a quarantine"))
    }

    /// The quarantines still running at `now`, oldest first; expired rows are deleted.
    pub fn active_quarantines(&mut self, now: f64) -> Result<Vec<Quarantine>> {
        self.conn
            .prepare_cached("DELETE FROM quarantine WHERE until <= ?1")
            .and_then(|mut s| s.execute(params![now]))
            .map_err(self.err("dropping expired quarantines"))?;
        let mut stmt = self
            .conn
            .prepare_cached(
                "SELECT path, kind, root, since, until FROM quarantine ORDER BY since, path, kind",
            )
            .map_err(self.err("listing quarantines"))?;
        let rows = stmt
            .query_map([], |r| {
                Ok(Quarantine {
                    path: r.get(0)?,
                    kind: r.get(1)?,
                    root: r.get(2)?,
                    since: r.get(3)?,
                    until: r.get(4)?,
                })
            })
            .and_then(|rows| rows.collect::<rusqlite::Result<Vec<_>>>());
        drop(stmt);
        rows.map_err(self.err("listing quarantines"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(path: &str, kind: &str, since: f64, until: f64) -> Quarantine {
        Quarantine {
            path: path.into(),
            kind: kind.into(),
            root: "/r".into(),
            since,
            until,
        }
    }

    #[test]
    fn quarantines_survive_reopen_extend_expire_and_end() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("state.db");
        {
            let mut store = Store::open(&db).unwrap();
            store
                .put_quarantine(&q("/r/a", "foreign-owner", 10.0, 100.0))
                .unwrap();
            store
                .put_quarantine(&q("/r/b", "wrong-label", 20.0, 50.0))
                .unwrap();
            // The same key again extends it, not a second row.
            store
                .put_quarantine(&q("/r/a", "foreign-owner", 30.0, 200.0))
                .unwrap();
            assert!(
                store
                    .put_quarantine(&q("/r/c", "bad-mode", 1.0, f64::NAN))
                    .is_err()
            );
        }
        let mut store = Store::open(&db).unwrap();
        let active = store.active_quarantines(40.0).unwrap();
        assert_eq!(
            active,
            vec![
                q("/r/b", "wrong-label", 20.0, 50.0),
                q("/r/a", "foreign-owner", 30.0, 200.0)
            ]
        );
        // Expired rows go.
        assert_eq!(store.active_quarantines(60.0).unwrap().len(), 1);
        assert!(store.delete_quarantine("/r/a", "foreign-owner").unwrap());
        assert!(!store.delete_quarantine("/r/a", "foreign-owner").unwrap());
        assert!(store.active_quarantines(60.0).unwrap().is_empty());
    }
}
