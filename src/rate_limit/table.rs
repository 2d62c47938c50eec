//! A fixed-capacity table of per-client state: the least recently seen key makes room for a
//! new one, every operation is O(1), and memory stays bounded however many keys an attacker
//! makes up (a spray of addresses, usernames or tokens).

use std::{hash::Hash, num::NonZeroUsize, sync::Mutex};

use governor::{nanos::Nanos, state::StateStore};
use lru::LruCache;

/// Keys each local table keeps: about 100 bytes each, so a table stays under ~10 MB.
pub const CAPACITY: usize = 100_000;

/// Per-key state with least-recently-used eviction.
pub struct BoundedTable<K: Hash + Eq, V> {
    entries: Mutex<LruCache<K, V>>,
}

impl<K: Hash + Eq, V> BoundedTable<K, V> {
    pub fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            entries: Mutex::new(LruCache::new(capacity)),
        }
    }

    /// Runs `f` on the key's state (created by `init` when absent), under the table's lock.
    pub fn with<T>(&self, key: K, init: impl FnOnce() -> V, f: impl FnOnce(&mut V) -> T) -> T {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        f(entries.get_or_insert_mut(key, init))
    }

    /// Runs `f` on the key's state when there is one.
    pub fn update(&self, key: &K, f: impl FnOnce(&mut V)) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(value) = entries.get_mut(key) {
            f(value);
        }
    }

    pub fn remove(&self, key: &K) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        entries.pop(key);
    }

    /// Keys held now (at most the capacity).
    pub fn len(&self) -> usize {
        self.entries.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// governor's per-key state (the theoretical arrival time of its GCRA) in a bounded table.
impl<K: Hash + Eq + Clone> StateStore for BoundedTable<K, Nanos> {
    type Key = K;

    fn measure_and_replace<T, F, E>(&self, key: &K, f: F) -> Result<T, E>
    where
        F: Fn(Option<Nanos>) -> Result<(T, Nanos), E>,
    {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        let (answer, state) = f(entries.get(key).copied())?;
        entries.put(key.clone(), state);
        Ok(answer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_full_table_forgets_the_least_recently_seen_key() {
        let table = BoundedTable::new(2);
        table.with("a", || 1, |_| ());
        table.with("b", || 2, |_| ());
        table.with("a", || 0, |_| ()); // seen again: now "b" is the oldest
        table.with("c", || 3, |_| ());
        assert_eq!(table.len(), 2);
        assert_eq!(table.with("a", || 0, |v| *v), 1);
        assert_eq!(
            table.with("b", || 0, |v| *v),
            0,
            "b was evicted and starts afresh"
        );
    }

    #[test]
    fn a_million_keys_never_hold_more_than_the_capacity() {
        let table = BoundedTable::new(CAPACITY);
        for i in 0..1_000_000_u64 {
            table.with(i, || i, |_| ());
        }
        assert_eq!(table.len(), CAPACITY);
    }
}
