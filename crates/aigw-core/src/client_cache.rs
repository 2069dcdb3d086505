//! Provider clients shared between the targets that connect the same way.

use std::collections::HashMap;
use std::fmt;
use std::hash::Hash;

use tokio::sync::Mutex;

use crate::Error;

/// One client per distinct connection settings `K`, built the first time a target needs
/// it and cloned for every later target with the same settings.
///
/// Sharing matters because a client owns a connection pool (and, for some providers, a
/// credential cache). Clients are built while targets are built, at start; a request only
/// uses the clone its target holds, so only start-up code takes the lock.
pub struct ClientCache<K, C> {
    // Held across a build on purpose: two targets with the same key must not race to
    // build two clients.
    clients: Mutex<HashMap<K, C>>,
}

impl<K, C> Default for ClientCache<K, C> {
    fn default() -> Self {
        ClientCache {
            clients: Mutex::new(HashMap::new()),
        }
    }
}

impl<K, C> fmt::Debug for ClientCache<K, C> {
    // Keys may hold credentials; only the count is shown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientCache").finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, C: Clone> ClientCache<K, C> {
    /// An empty cache.
    pub fn new() -> Self {
        Self::default()
    }

    /// The client for `key`, built by `build` if none is cached yet; a failed build caches
    /// nothing.
    pub async fn get_or_build(
        &self,
        key: K,
        build: impl AsyncFnOnce(&K) -> Result<C, Error>,
    ) -> Result<C, Error> {
        let mut clients = self.clients.lock().await;
        if let Some(client) = clients.get(&key) {
            return Ok(client.clone());
        }
        let client = build(&key).await?;
        clients.insert(key, client.clone());
        Ok(client)
    }

    /// How many distinct clients were built so far.
    pub async fn len(&self) -> usize {
        self.clients.lock().await.len()
    }

    /// Whether no client was built yet.
    pub async fn is_empty(&self) -> bool {
        self.len().await == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorKind;

    #[tokio::test]
    async fn one_client_per_key_and_failures_are_not_cached() {
        let cache: ClientCache<u32, String> = ClientCache::new();
        let build = async |key: &u32| Ok(format!("client {key}"));
        assert_eq!(cache.get_or_build(1, build).await.unwrap(), "client 1");
        let not_again = async |_: &u32| Err(Error::new(ErrorKind::Internal, "built twice"));
        assert_eq!(cache.get_or_build(1, not_again).await.unwrap(), "client 1");
        let failing = async |_: &u32| Err(Error::new(ErrorKind::Internal, "no region"));
        assert!(cache.get_or_build(2, failing).await.is_err());
        assert_eq!(cache.len().await, 1);
        assert_eq!(cache.get_or_build(2, build).await.unwrap(), "client 2");
        assert_eq!(cache.len().await, 2);
    }
}
