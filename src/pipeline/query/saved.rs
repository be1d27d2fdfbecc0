//! Named queries people keep, as SQL Lab keeps them: saved, renamed, rewritten and deleted,
//! shared by a link that names the query by its number (`/query?saved=3`), so the link
//! survives a rename and shows the latest SQL. Kept in one JSON file under the data
//! directory, replaced whole on every change: a crash leaves the previous list, never half.

use crate::model::SavedQuery;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Mutex, PoisonError};

/// Saved queries at most: the list is sent whole to every workbench.
pub const MAX_SAVED: usize = 1000;
/// Characters of a name at most.
pub const MAX_NAME_CHARS: usize = 200;
/// Bytes of a saved query's SQL at most (a request body is 256 KiB at most anyway).
pub const MAX_SQL_BYTES: usize = 100 * 1024;

/// Why a change to the saved queries was refused.
#[derive(Debug, thiserror::Error)]
pub enum SavedQueryError {
    /// No saved query has this number.
    #[error("no saved query {0}")]
    NotFound(u64),
    /// Another saved query has this name (names are told apart without regard to case).
    #[error("a saved query is already named {0:?}")]
    NameTaken(String),
    /// The name is blank or too long.
    #[error("a saved query needs a name of 1 to {MAX_NAME_CHARS} characters")]
    BadName,
    /// The SQL is blank or too long.
    #[error("a saved query needs SQL of at most {MAX_SQL_BYTES} bytes")]
    BadSql,
    /// As many queries as are kept are saved.
    #[error("{MAX_SAVED} queries are saved, the most kept; delete one first")]
    Full,
    /// The file could not be written; nothing changed.
    #[error("could not save the queries in {path}: {error}")]
    Io { path: String, error: String },
}

impl SavedQueryError {
    /// Whether the fault is in the request (the client's) rather than in the server.
    pub fn is_client_error(&self) -> bool {
        !matches!(self, SavedQueryError::Io { .. })
    }
}

/// What a change asks for; what it leaves out stays as it is.
#[derive(Debug, Default, Clone)]
pub struct SavedQueryChange {
    /// A new name.
    pub name: Option<String>,
    /// New SQL.
    pub sql: Option<String>,
    /// The table version it reads: `Some(None)` is the latest.
    pub version: Option<Option<u64>>,
}

/// The saved queries, by number, and the file that keeps them.
pub struct SavedQueries {
    path: PathBuf,
    saved: Mutex<Saved>,
}

/// What the file holds.
#[derive(Clone, Default, Serialize, Deserialize)]
struct Saved {
    /// The number the next saved query gets: numbers are never given twice, so a link to a
    /// deleted query finds nothing rather than another query.
    next_id: u64,
    queries: BTreeMap<u64, SavedQuery>,
}

impl SavedQueries {
    /// Loads what an earlier run saved in `path`; a file that does not parse is set aside
    /// (renamed with `.unreadable`), not overwritten.
    pub fn open(path: PathBuf) -> Self {
        let saved = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice::<Saved>(&bytes).unwrap_or_else(|error| {
                let aside = path.with_extension("json.unreadable");
                tracing::warn!(%error, path = %path.display(), aside = %aside.display(), "the saved queries do not parse; set aside");
                let _ = std::fs::rename(&path, aside);
                Saved::default()
            }),
            Err(_) => Saved::default(),
        };
        SavedQueries {
            path,
            saved: Mutex::new(saved),
        }
    }

    fn saved(&self) -> std::sync::MutexGuard<'_, Saved> {
        self.saved.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every saved query, by name.
    pub fn list(&self) -> Vec<SavedQuery> {
        let mut list: Vec<SavedQuery> = self.saved().queries.values().cloned().collect();
        list.sort_by_key(|q| q.name.to_lowercase());
        list
    }

    /// The saved query numbered `id`.
    pub fn get(&self, id: u64) -> Result<SavedQuery, SavedQueryError> {
        self.saved()
            .queries
            .get(&id)
            .cloned()
            .ok_or(SavedQueryError::NotFound(id))
    }

    /// Saves `sql` (reading `version`, or the latest) under `name`.
    pub fn create(
        &self,
        name: &str,
        sql: &str,
        version: Option<u64>,
    ) -> Result<SavedQuery, SavedQueryError> {
        let mut saved = self.saved();
        if saved.queries.len() >= MAX_SAVED {
            return Err(SavedQueryError::Full);
        }
        let id = saved.next_id.max(1);
        let now = Utc::now();
        let query = SavedQuery {
            id,
            name: valid_name(name, &saved.queries, None)?,
            sql: valid_sql(sql)?,
            version,
            created: now,
            updated: now,
        };
        let mut changed = saved.clone();
        changed.queries.insert(id, query.clone());
        changed.next_id = id + 1;
        self.write(&changed)?;
        *saved = changed;
        Ok(query)
    }

    /// Renames or rewrites the saved query numbered `id`.
    pub fn change(&self, id: u64, change: SavedQueryChange) -> Result<SavedQuery, SavedQueryError> {
        let mut saved = self.saved();
        let mut query = saved
            .queries
            .get(&id)
            .cloned()
            .ok_or(SavedQueryError::NotFound(id))?;
        if let Some(name) = change.name {
            query.name = valid_name(&name, &saved.queries, Some(id))?;
        }
        if let Some(sql) = change.sql {
            query.sql = valid_sql(&sql)?;
        }
        if let Some(version) = change.version {
            query.version = version;
        }
        query.updated = Utc::now();
        let mut changed = saved.clone();
        changed.queries.insert(id, query.clone());
        self.write(&changed)?;
        *saved = changed;
        Ok(query)
    }

    /// Deletes the saved query numbered `id`.
    pub fn delete(&self, id: u64) -> Result<(), SavedQueryError> {
        let mut saved = self.saved();
        if !saved.queries.contains_key(&id) {
            return Err(SavedQueryError::NotFound(id));
        }
        let mut changed = saved.clone();
        changed.queries.remove(&id);
        self.write(&changed)?;
        *saved = changed;
        Ok(())
    }

    /// Replaces the file with `saved`, whole or not at all.
    fn write(&self, saved: &Saved) -> Result<(), SavedQueryError> {
        let failed = |error: String| SavedQueryError::Io {
            path: self.path.display().to_string(),
            error,
        };
        let json = serde_json::to_vec_pretty(saved).map_err(|e| failed(e.to_string()))?;
        crate::files::replace(&self.path, &json).map_err(|e| failed(e.to_string()))
    }
}

fn valid_name(
    name: &str,
    queries: &BTreeMap<u64, SavedQuery>,
    renamed: Option<u64>,
) -> Result<String, SavedQueryError> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(SavedQueryError::BadName);
    }
    let taken = queries
        .values()
        .any(|q| Some(q.id) != renamed && q.name.to_lowercase() == name.to_lowercase());
    match taken {
        true => Err(SavedQueryError::NameTaken(name.to_owned())),
        false => Ok(name.to_owned()),
    }
}

fn valid_sql(sql: &str) -> Result<String, SavedQueryError> {
    let sql = sql.trim();
    match sql.is_empty() || sql.len() > MAX_SQL_BYTES {
        true => Err(SavedQueryError::BadSql),
        false => Ok(sql.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_renamed_rewritten_and_deleted_and_all_of_it_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved-queries.json");
        let saved = SavedQueries::open(path.clone());
        let errors = saved.create("Errors", "SELECT 1", None).unwrap();
        let slow = saved.create("slow", "SELECT 2", Some(3)).unwrap();
        assert_eq!((errors.id, slow.id), (1, 2));
        assert!(matches!(
            saved.create(" errors ", "SELECT 3", None),
            Err(SavedQueryError::NameTaken(_))
        ));
        assert!(matches!(
            saved.create("  ", "SELECT 3", None),
            Err(SavedQueryError::BadName)
        ));
        assert!(matches!(
            saved.create("blank", " ", None),
            Err(SavedQueryError::BadSql)
        ));
        let renamed = saved
            .change(
                1,
                SavedQueryChange {
                    name: Some("All errors".into()),
                    sql: Some("SELECT 10".into()),
                    version: Some(None),
                },
            )
            .unwrap();
        assert_eq!((renamed.id, renamed.name.as_str()), (1, "All errors"));
        // Its own name, in another case, is no clash.
        saved
            .change(
                2,
                SavedQueryChange {
                    name: Some("Slow".into()),
                    ..SavedQueryChange::default()
                },
            )
            .unwrap();
        saved.delete(2).unwrap();
        assert!(matches!(saved.delete(2), Err(SavedQueryError::NotFound(2))));
        let third = saved.create("third", "SELECT 3", None).unwrap();
        assert_eq!(
            third.id, 3,
            "a number is not given twice while later ones live"
        );

        let again = SavedQueries::open(path);
        let kept: Vec<(u64, String, String)> = again
            .list()
            .into_iter()
            .map(|q| (q.id, q.name, q.sql))
            .collect();
        assert_eq!(
            kept,
            [
                (1, "All errors".into(), "SELECT 10".into()),
                (3, "third".into(), "SELECT 3".into())
            ]
        );
    }

    #[test]
    fn a_file_that_does_not_parse_is_set_aside_not_lost() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("saved-queries.json");
        std::fs::write(&path, "{ not json").unwrap();
        let saved = SavedQueries::open(path.clone());
        assert!(saved.list().is_empty());
        assert_eq!(
            std::fs::read_to_string(path.with_extension("json.unreadable")).unwrap(),
            "{ not json"
        );
        saved.create("new", "SELECT 1", None).unwrap();
        assert_eq!(SavedQueries::open(path).list().len(), 1);
    }
}
