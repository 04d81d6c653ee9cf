//! A table of the store: an ordered map read as a `BTreeMap`, whose writes remember which keys
//! changed, so the store writes those records and nothing else (#15: the cost of a write does
//! not grow with the fleet).

use std::borrow::Borrow;
use std::collections::{BTreeMap, BTreeSet, btree_map};
use std::ops::Deref;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Records by lower-case id. Reads go through `Deref` to the map; every write marks its key.
#[derive(Debug, Clone)]
pub(crate) struct Table<V> {
    map: BTreeMap<String, V>,
    /// Keys written (or removed) since the store last took them.
    dirty: BTreeSet<String>,
}

impl<V> Default for Table<V> {
    fn default() -> Self {
        Self {
            map: BTreeMap::new(),
            dirty: BTreeSet::new(),
        }
    }
}

impl<V> Deref for Table<V> {
    type Target = BTreeMap<String, V>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl<'a, V> IntoIterator for &'a Table<V> {
    type Item = (&'a String, &'a V);
    type IntoIter = btree_map::Iter<'a, String, V>;

    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl<V> Table<V> {
    /// A table loaded from disk: nothing to write back.
    pub(crate) fn loaded(map: BTreeMap<String, V>) -> Self {
        Self {
            map,
            dirty: BTreeSet::new(),
        }
    }

    /// A table whose every record still has to be written (a migrated snapshot).
    pub(crate) fn unsaved(map: BTreeMap<String, V>) -> Self {
        let dirty = map.keys().cloned().collect();
        Self { map, dirty }
    }

    pub(crate) fn get_mut<Q>(&mut self, key: &Q) -> Option<&mut V>
    where
        String: Borrow<Q>,
        Q: Ord + ToOwned<Owned = String> + ?Sized,
    {
        let value = self.map.get_mut(key)?;
        self.dirty.insert(key.to_owned());
        Some(value)
    }

    pub(crate) fn insert(&mut self, key: String, value: V) -> Option<V> {
        self.dirty.insert(key.clone());
        self.map.insert(key, value)
    }

    pub(crate) fn remove<Q>(&mut self, key: &Q) -> Option<V>
    where
        String: Borrow<Q>,
        Q: Ord + ToOwned<Owned = String> + ?Sized,
    {
        let removed = self.map.remove(key)?;
        self.dirty.insert(key.to_owned());
        Some(removed)
    }

    pub(crate) fn entry(&mut self, key: String) -> btree_map::Entry<'_, String, V> {
        self.dirty.insert(key.clone());
        self.map.entry(key)
    }

    /// Every record, writable: all of them are written back.
    pub(crate) fn values_mut(&mut self) -> btree_map::ValuesMut<'_, String, V> {
        self.dirty.extend(self.map.keys().cloned());
        self.map.values_mut()
    }

    /// The keys written since the last call, with their records now (`None`: removed).
    pub(crate) fn take_changes(&mut self) -> impl Iterator<Item = (String, Option<&V>)> + '_ {
        let dirty = std::mem::take(&mut self.dirty);
        dirty.into_iter().map(|key| {
            let value = self.map.get(&key);
            (key, value)
        })
    }
}

/// A table reads and writes as the map it holds (the snapshot format of earlier versions).
impl<V: Serialize> Serialize for Table<V> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.map.serialize(serializer)
    }
}

impl<'de, V: Deserialize<'de>> Deserialize<'de> for Table<V> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        BTreeMap::deserialize(deserializer).map(Self::unsaved)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_mark_their_keys_and_reads_do_not() {
        let mut t: Table<u32> = Table::loaded(BTreeMap::from([("a".into(), 1), ("b".into(), 2)]));
        assert_eq!(t.get("a"), Some(&1));
        assert_eq!(t.take_changes().count(), 0);
        *t.get_mut("a").unwrap() = 10;
        t.remove("b");
        t.insert("c".into(), 3);
        assert!(t.get_mut("zz").is_none());
        let changes: Vec<_> = t.take_changes().map(|(k, v)| (k, v.copied())).collect();
        assert_eq!(
            changes,
            [
                ("a".into(), Some(10)),
                ("b".into(), None),
                ("c".into(), Some(3))
            ]
        );
        assert_eq!(t.take_changes().count(), 0);
    }
}
