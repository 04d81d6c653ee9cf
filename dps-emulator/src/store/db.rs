//! The store on disk: one redb database (an embedded, transactional key-value store in pure
//! Rust), a table per kind of record, one row per record as JSON. A flush is one write
//! transaction with the records that changed; its commit is durable (fsync) before anything
//! waiting on it is acknowledged (#11, #15).

use std::path::Path;

use redb::{Database, ReadableTable as _, TableDefinition};

/// redb's error, boxed: it is large and travels through every store call.
pub(crate) type Error = Box<redb::Error>;

/// One record to write: the table, the key, the JSON (`None`: delete).
pub(crate) type Change = (&'static str, String, Option<Vec<u8>>);

/// Opens (or creates) the database at `path`; a new file is owner-only (mode 0600) before it
/// holds anything.
pub(crate) fn open(path: &Path) -> Result<Database, Error> {
    if !path.exists() {
        create_private(path).map_err(|e| Box::new(e.into()))?;
    }
    Database::create(path).map_err(|e| Box::new(e.into()))
}

#[cfg(unix)]
fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map(drop)
}

#[cfg(not(unix))]
fn create_private(path: &Path) -> std::io::Result<()> {
    std::fs::File::create_new(path).map(drop)
}

fn table(name: &str) -> TableDefinition<'_, &'static str, &'static [u8]> {
    TableDefinition::new(name)
}

/// Every row of the table `name`, in key order (none when the table was never written).
pub(crate) fn rows(db: &Database, name: &str) -> Result<Vec<(String, Vec<u8>)>, Error> {
    let boxed = |e: redb::Error| Box::new(e);
    let read = db.begin_read().map_err(|e| boxed(e.into()))?;
    let table = match read.open_table(table(name)) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
        Err(e) => return Err(boxed(e.into())),
    };
    let mut rows = Vec::new();
    for row in table.iter().map_err(|e| boxed(e.into()))? {
        let (key, value) = row.map_err(|e| boxed(e.into()))?;
        rows.push((key.value().to_owned(), value.value().to_vec()));
    }
    Ok(rows)
}

/// Writes `changes` in one transaction, in order (a later change of a key wins).
pub(crate) fn write(db: &Database, changes: &[Change]) -> Result<(), Error> {
    let boxed = |e: redb::Error| Box::new(e);
    let txn = db.begin_write().map_err(|e| boxed(e.into()))?;
    {
        let mut open: Option<(&str, redb::Table<'_, &'static str, &'static [u8]>)> = None;
        for (name, key, value) in changes {
            if open.as_ref().is_none_or(|(n, _)| n != name) {
                let t = txn.open_table(table(name)).map_err(|e| boxed(e.into()))?;
                open = Some((name, t));
            }
            if let Some((_, t)) = open.as_mut() {
                let done = match value {
                    Some(bytes) => t.insert(key.as_str(), bytes.as_slice()).map(drop),
                    None => t.remove(key.as_str()).map(drop),
                };
                done.map_err(|e| boxed(e.into()))?;
            }
        }
    }
    txn.commit().map_err(|e| boxed(e.into()))?;
    Ok(())
}
