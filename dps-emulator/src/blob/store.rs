//! The built-in blob storage: block blobs in memory, with their uncommitted blocks, as the Blob
//! service keeps them (Azure Storage REST reference: Put Blob, Put Block, Put Block List).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard, PoisonError};

use bytes::Bytes;

/// The most blocks a block list may name (the service's limit).
pub(crate) const MAX_BLOCKS: usize = 50_000;

/// A committed blob.
#[derive(Debug, Clone)]
pub(crate) struct StoredBlob {
    pub(crate) content: Bytes,
    pub(crate) etag: String,
    pub(crate) last_modified_unix: u64,
}

#[derive(Debug, Default)]
struct Entry {
    committed: Option<StoredBlob>,
    /// Staged blocks by block id (base64 text as sent), until the next Put Block List.
    uncommitted: HashMap<String, Bytes>,
    /// The blocks of the committed blob, to honour `<Committed>` entries of a block list.
    committed_blocks: HashMap<String, Bytes>,
}

/// Why a block list cannot be committed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CommitError {
    /// A named block is not staged (or committed, for `<Committed>`).
    InvalidBlockList(String),
}

/// Blobs by container, then by name.
#[derive(Debug, Default)]
pub(crate) struct BlobStore {
    containers: Mutex<BTreeMap<String, HashMap<String, Entry>>>,
}

/// Which list a block list entry names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BlockSource {
    Latest,
    Committed,
    Uncommitted,
}

impl BlobStore {
    fn lock(&self) -> MutexGuard<'_, BTreeMap<String, HashMap<String, Entry>>> {
        self.containers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Creates a container (no-op if it exists).
    pub(crate) fn create_container(&self, container: &str) {
        self.lock().entry(container.to_owned()).or_default();
    }

    /// Whether a container exists.
    pub(crate) fn has_container(&self, container: &str) -> bool {
        self.lock().contains_key(container)
    }

    /// Put Blob: replaces the blob and drops its staged blocks.
    pub(crate) fn put_blob(&self, container: &str, name: &str, content: Bytes) -> StoredBlob {
        let blob = stored(content);
        let mut containers = self.lock();
        let entry = containers
            .entry(container.to_owned())
            .or_default()
            .entry(name.to_owned())
            .or_default();
        entry.committed = Some(blob.clone());
        entry.uncommitted.clear();
        entry.committed_blocks.clear();
        blob
    }

    /// Put Block: stages one block.
    pub(crate) fn put_block(&self, container: &str, name: &str, block_id: &str, content: Bytes) {
        self.lock()
            .entry(container.to_owned())
            .or_default()
            .entry(name.to_owned())
            .or_default()
            .uncommitted
            .insert(block_id.to_owned(), content);
    }

    /// Put Block List: the blob becomes the named blocks in order; staged blocks not named are
    /// discarded, as the service does.
    pub(crate) fn put_block_list(
        &self,
        container: &str,
        name: &str,
        list: &[(BlockSource, String)],
    ) -> Result<StoredBlob, CommitError> {
        let mut containers = self.lock();
        let entry = containers
            .entry(container.to_owned())
            .or_default()
            .entry(name.to_owned())
            .or_default();
        let mut blocks = Vec::with_capacity(list.len());
        for (source, id) in list {
            let found = match source {
                BlockSource::Uncommitted => entry.uncommitted.get(id),
                BlockSource::Committed => entry.committed_blocks.get(id),
                BlockSource::Latest => entry
                    .uncommitted
                    .get(id)
                    .or_else(|| entry.committed_blocks.get(id)),
            };
            let block = found.ok_or_else(|| CommitError::InvalidBlockList(id.clone()))?;
            blocks.push((id.clone(), block.clone()));
        }
        let mut content = Vec::with_capacity(blocks.iter().map(|(_, b)| b.len()).sum());
        for (_, block) in &blocks {
            content.extend_from_slice(block);
        }
        let blob = stored(Bytes::from(content));
        entry.committed = Some(blob.clone());
        entry.uncommitted.clear();
        entry.committed_blocks = blocks.into_iter().collect();
        Ok(blob)
    }

    /// A committed blob.
    pub(crate) fn get(&self, container: &str, name: &str) -> Option<StoredBlob> {
        self.lock().get(container)?.get(name)?.committed.clone()
    }
}

fn stored(content: Bytes) -> StoredBlob {
    StoredBlob {
        content,
        etag: format!("\"0x{}\"", uuid::Uuid::new_v4().simple()).to_ascii_uppercase(),
        last_modified_unix: crate::util::time::unix_now(),
    }
}

/// Reads the entries of a `<BlockList>` body: `<Latest>`, `<Committed>` and `<Uncommitted>`
/// elements in order. `None` if the body is not such a list.
pub(crate) fn parse_block_list(body: &str) -> Option<Vec<(BlockSource, String)>> {
    let start = body.find("<BlockList>")? + "<BlockList>".len();
    let end = body.rfind("</BlockList>")?;
    let mut rest = body.get(start..end)?.trim();
    let mut list = Vec::new();
    while !rest.is_empty() {
        let (source, tag) = [
            (BlockSource::Latest, "Latest"),
            (BlockSource::Committed, "Committed"),
            (BlockSource::Uncommitted, "Uncommitted"),
        ]
        .into_iter()
        .find(|(_, tag)| rest.starts_with(&format!("<{tag}>")))?;
        let open = tag.len() + 2;
        let close = format!("</{tag}>");
        let end = rest.find(&close)?;
        list.push((source, rest.get(open..end)?.trim().to_owned()));
        rest = rest.get(end + close.len()..)?.trim_start();
        if list.len() > MAX_BLOCKS {
            return None;
        }
    }
    Some(list)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_commit_in_list_order() {
        let store = BlobStore::default();
        store.put_block("c", "b", "QQ==", Bytes::from_static(b"aa"));
        store.put_block("c", "b", "Qg==", Bytes::from_static(b"bb"));
        let list = parse_block_list(
            "<?xml version=\"1.0\" encoding=\"utf-8\"?><BlockList><Latest>Qg==</Latest>\n <Uncommitted>QQ==</Uncommitted></BlockList>",
        )
        .unwrap();
        let blob = store.put_block_list("c", "b", &list).unwrap();
        assert_eq!(&blob.content[..], b"bbaa");
        // Committed blocks can be reused; unknown ones are refused.
        let list = vec![(BlockSource::Committed, "QQ==".to_owned())];
        assert_eq!(
            &store.put_block_list("c", "b", &list).unwrap().content[..],
            b"aa"
        );
        let list = vec![(BlockSource::Uncommitted, "QQ==".to_owned())];
        assert!(store.put_block_list("c", "b", &list).is_err());
        assert_eq!(&store.get("c", "b").unwrap().content[..], b"aa");
        assert!(parse_block_list("<BlockList><Other>x</Other></BlockList>").is_none());
        assert_eq!(parse_block_list("<BlockList></BlockList>"), Some(vec![]));
    }
}
