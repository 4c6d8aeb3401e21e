//! Names RT REST 2.0 gives only as ids (queues in tickets, users and queues in
//! transactions), cached for the life of the client: a renamed queue or user shows its old
//! name until the next cold start. Each cache is bounded; the bound only guards against
//! surprises (queues and owners are few), and a full cache simply starts over.

use std::{
    collections::HashMap,
    sync::{PoisonError, RwLock},
};

/// One bounded id → name cache.
#[derive(Debug)]
pub(super) struct NameCache {
    names: RwLock<HashMap<u64, String>>,
    max: usize,
}

impl NameCache {
    /// An empty cache holding at most `max` names.
    pub(super) fn new(max: usize) -> Self {
        Self { names: RwLock::new(HashMap::new()), max }
    }

    /// The cached name of `id`.
    pub(super) fn get(&self, id: u64) -> Option<String> {
        self.names.read().unwrap_or_else(PoisonError::into_inner).get(&id).cloned()
    }

    /// Remembers `name` for `id`.
    pub(super) fn put(&self, id: u64, name: &str) {
        let mut names = self.names.write().unwrap_or_else(PoisonError::into_inner);
        if names.len() >= self.max {
            names.clear();
        }
        names.insert(id, name.to_owned());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_kept_up_to_the_bound_then_start_over() {
        let cache = NameCache::new(2);
        cache.put(1, "General");
        cache.put(2, "Support");
        assert_eq!((cache.get(1).as_deref(), cache.get(3)), (Some("General"), None));
        cache.put(3, "Billing");
        assert_eq!((cache.get(1), cache.get(3).as_deref()), (None, Some("Billing")));
    }
}
