//! A hash map in shards that grow one at a time.
//!
//! A `HashMap` grows by allocating a table twice the size and moving every entry into it at
//! once. Under load the transaction tables hold hundreds of thousands of lingering
//! transactions, and such a growth (every key hashed again, the new table's pages faulted in)
//! held up every message for tens of milliseconds. In [`SHARDS`] shards, one growth moves a
//! [`SHARDS`]th of the entries, and the shards grow at different moments.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash};

type Map<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Shards per map.
const SHARDS: usize = 64;

#[derive(Debug)]
pub(crate) struct Sharded<K, V> {
    shards: Box<[Map<K, V>]>,
    /// Picks the shard; independent of the shards' own hashers, so the keys of one shard are
    /// spread evenly within it.
    pick: foldhash::fast::RandomState,
    len: usize,
}

impl<K, V> Default for Sharded<K, V> {
    fn default() -> Self {
        Self {
            shards: (0..SHARDS).map(|_| Map::default()).collect(),
            pick: foldhash::fast::RandomState::default(),
            len: 0,
        }
    }
}

impl<K: Hash + Eq, V> Sharded<K, V> {
    fn shard(&self, key: &K) -> usize {
        // `SHARDS` is a power of two.
        self.pick.hash_one(key) as usize & (SHARDS - 1)
    }

    pub(crate) fn get(&self, key: &K) -> Option<&V> {
        self.shards[self.shard(key)].get(key)
    }

    pub(crate) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let i = self.shard(key);
        self.shards[i].get_mut(key)
    }

    pub(crate) fn contains_key(&self, key: &K) -> bool {
        self.shards[self.shard(key)].contains_key(key)
    }

    pub(crate) fn insert(&mut self, key: K, value: V) -> Option<V> {
        let i = self.shard(&key);
        let old = self.shards[i].insert(key, value);
        if old.is_none() {
            self.len += 1;
        }
        old
    }

    pub(crate) fn remove(&mut self, key: &K) -> Option<V> {
        let i = self.shard(key);
        let old = self.shards[i].remove(key);
        if old.is_some() {
            self.len -= 1;
        }
        old
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_as_one_map_and_spreads_over_the_shards() {
        let mut m: Sharded<u64, u64> = Sharded::default();
        assert!(m.is_empty());
        for i in 0..10_000 {
            assert_eq!(m.insert(i, i * 2), None);
        }
        assert_eq!(m.insert(7, 1), Some(14), "a second insert replaces");
        assert_eq!(m.len(), 10_000);
        assert_eq!(m.get(&7), Some(&1));
        *m.get_mut(&8).unwrap() += 1;
        assert_eq!(m.get(&8), Some(&17));
        assert!(m.contains_key(&9_999) && !m.contains_key(&10_000));
        assert_eq!(m.remove(&9_999), Some(19_998));
        assert_eq!(m.remove(&9_999), None);
        assert_eq!(m.len(), 9_999);
        // Sequential keys land on every shard, none with more than twice its share.
        let most = m.shards.iter().map(|s| s.len()).max().unwrap();
        let least = m.shards.iter().map(|s| s.len()).min().unwrap();
        assert!(least > 0 && most < 2 * 10_000 / SHARDS, "{least}..{most}");
        for i in 0..10_000 {
            m.remove(&i);
        }
        assert!(m.is_empty());
    }
}
