//! Cancel keys: clients get keys minted by the proxy, mapped to the origin
//! backend that serves their session, so a `CancelRequest` reaches the right
//! origin process and a key from one proxy session cannot cancel another.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use crate::protocol::startup::CancelKey;

/// Proxy-issued cancel key → the origin backend's own key.
#[derive(Default)]
pub(crate) struct CancelMap {
    keys: Mutex<HashMap<CancelKey, CancelKey>>,
}

impl CancelMap {
    /// Mint a fresh proxy key for a session whose origin backend has `origin`.
    /// The key is forgotten when the returned registration is dropped.
    pub(crate) fn register(self: &Arc<Self>, origin: CancelKey) -> Registration {
        let mut keys = self.keys.lock().unwrap_or_else(PoisonError::into_inner);
        let key = loop {
            let candidate = CancelKey {
                // Positive process ids, as PostgreSQL's are.
                pid: random_i32() & i32::MAX,
                secret: random_i32(),
            };
            if candidate.pid != 0 && !keys.contains_key(&candidate) {
                break candidate;
            }
        };
        keys.insert(key, origin);
        Registration {
            map: Arc::clone(self),
            key,
        }
    }

    /// The origin key behind a proxy key, if a live session holds it.
    pub(crate) fn lookup(&self, key: CancelKey) -> Option<CancelKey> {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .copied()
    }

    fn remove(&self, key: CancelKey) {
        self.keys
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&key);
    }
}

/// A live session's proxy key; removes itself from the map on drop.
pub(crate) struct Registration {
    map: Arc<CancelMap>,
    pub(crate) key: CancelKey,
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.map.remove(self.key);
    }
}

fn random_i32() -> i32 {
    let mut bytes = [0u8; 4];
    // The OS random source does not fail on Linux once booted; should it, a
    // counter-free fallback still yields a usable (if guessable) key.
    if getrandom::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        bytes = nanos.to_be_bytes();
    }
    i32::from_be_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_map_to_origin_and_vanish_with_their_session() {
        let map = Arc::new(CancelMap::default());
        let origin = CancelKey {
            pid: 10,
            secret: 20,
        };
        let reg = map.register(origin);
        assert!(reg.key.pid > 0);
        assert_ne!(reg.key, origin);
        assert_eq!(map.lookup(reg.key), Some(origin));
        let key = reg.key;
        drop(reg);
        assert_eq!(map.lookup(key), None);
    }

    #[test]
    fn a_wrong_secret_does_not_match() {
        let map = Arc::new(CancelMap::default());
        let reg = map.register(CancelKey { pid: 1, secret: 2 });
        let guess = CancelKey {
            pid: reg.key.pid,
            secret: reg.key.secret.wrapping_add(1),
        };
        assert_eq!(map.lookup(guess), None);
    }
}
