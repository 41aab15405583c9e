//! A thin wrapper over `etcd-client`: the region's keys under `/strato/<region>/`, every
//! call bounded in time (a host cut off from etcd must learn it in seconds, not hang), and
//! the few operations membership and placement need: leased puts, prefix lists, watches
//! and compare-and-swap transactions.

use std::time::Duration;

use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, PutOptions, Txn, TxnOp, WatchOptions,
};

/// How long a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// An etcd failure.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// etcd did not answer or refused the request.
    #[error("etcd at {endpoints} did not answer")]
    Unreachable {
        /// The endpoints tried.
        endpoints: String,
        /// What the client said.
        #[source]
        source: etcd_client::Error,
    },
    /// A value under the region's prefix does not decode.
    #[error("etcd key {0} holds a value this daemon cannot read")]
    Decode(String, #[source] serde_json::Error),
    /// The lease is gone (expired, or revoked while etcd was away).
    #[error("the membership lease expired")]
    LeaseLost,
}

/// One key as listed.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The key, without the region's prefix.
    pub key: String,
    /// The value.
    pub value: Vec<u8>,
    /// The revision that last changed it.
    pub mod_revision: i64,
}

/// A condition of a transaction ([`Etcd::txn`]), on a key under the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cond {
    /// The key was last changed at this revision (0: the key does not exist).
    ModRev(String, i64),
    /// The key holds exactly this value.
    Value(String, Vec<u8>),
}

/// What a transaction ([`Etcd::txn`]) does when its conditions hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    /// Puts the key.
    Put(String, Vec<u8>),
    /// Deletes the key.
    Delete(String),
}

/// A connection to the region's etcd.
#[derive(Clone)]
pub struct Etcd {
    client: Client,
    prefix: String,
    endpoints: String,
}

impl std::fmt::Debug for Etcd {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Etcd")
            .field("prefix", &self.prefix)
            .field("endpoints", &self.endpoints)
            .finish()
    }
}

impl Etcd {
    /// Connects to `endpoints` for `region`.
    pub async fn connect(endpoints: &[String], region: &str) -> Result<Etcd, EtcdError> {
        let joined = endpoints.join(",");
        let options = ConnectOptions::new()
            .with_connect_timeout(CONNECT_TIMEOUT)
            .with_timeout(REQUEST_TIMEOUT)
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let client = tokio::time::timeout(
            CONNECT_TIMEOUT * 2,
            Client::connect(endpoints, Some(options)),
        )
        .await
        .map_err(|_| etcd_client::Error::InvalidArgs("connect timed out".into()))
        .and_then(|r| r)
        .map_err(|source| EtcdError::Unreachable {
            endpoints: joined.clone(),
            source,
        })?;
        Ok(Etcd {
            client,
            prefix: format!("/strato/{region}/"),
            endpoints: joined,
        })
    }

    fn fail(&self, source: etcd_client::Error) -> EtcdError {
        EtcdError::Unreachable {
            endpoints: self.endpoints.clone(),
            source,
        }
    }

    fn full(&self, key: &str) -> String {
        format!("{}{key}", self.prefix)
    }

    /// Grants a lease of `ttl`; its ID.
    pub async fn grant(&mut self, ttl: Duration) -> Result<i64, EtcdError> {
        let r = self
            .client
            .lease_grant(ttl.as_secs().max(1) as i64, None)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(r.id())
    }

    /// Renews `lease` once; `LeaseLost` when etcd no longer knows it.
    pub async fn renew(&mut self, lease: i64) -> Result<(), EtcdError> {
        let (mut keeper, mut stream) = self
            .client
            .lease_keep_alive(lease)
            .await
            .map_err(|e| self.fail(e))?;
        keeper.keep_alive().await.map_err(|e| self.fail(e))?;
        let answer = tokio::time::timeout(REQUEST_TIMEOUT, stream.message())
            .await
            .map_err(|_| {
                self.fail(etcd_client::Error::InvalidArgs(
                    "keep-alive timed out".into(),
                ))
            })?
            .map_err(|e| self.fail(e))?;
        match answer {
            Some(a) if a.ttl() > 0 => Ok(()),
            _ => Err(EtcdError::LeaseLost),
        }
    }

    /// Revokes `lease` (its keys go at once).
    pub async fn revoke(&mut self, lease: i64) -> Result<(), EtcdError> {
        self.client
            .lease_revoke(lease)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Puts `key` (under the region), bound to `lease` when given.
    pub async fn put(
        &mut self,
        key: &str,
        value: Vec<u8>,
        lease: Option<i64>,
    ) -> Result<(), EtcdError> {
        let options = lease.map(|l| PutOptions::new().with_lease(l));
        let key = self.full(key);
        self.client
            .put(key, value, options)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Deletes `key` (under the region).
    pub async fn delete(&mut self, key: &str) -> Result<(), EtcdError> {
        let key = self.full(key);
        self.client
            .delete(key, None)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(())
    }

    /// Every key under `prefix` (under the region) at one revision, and that revision.
    pub async fn list(&mut self, prefix: &str) -> Result<(i64, Vec<Entry>), EtcdError> {
        let key = self.full(prefix);
        let r = self
            .client
            .get(key, Some(GetOptions::new().with_prefix()))
            .await
            .map_err(|e| self.fail(e))?;
        let revision = r.header().map(|h| h.revision()).unwrap_or(0);
        let entries = r
            .kvs()
            .iter()
            .map(|kv| Entry {
                key: String::from_utf8_lossy(kv.key())
                    .strip_prefix(&self.prefix)
                    .unwrap_or_default()
                    .to_string(),
                value: kv.value().to_vec(),
                mod_revision: kv.mod_revision(),
            })
            .collect();
        Ok((revision, entries))
    }

    /// A watch on `prefix` from `revision`: the stream yields whenever a key under it changes.
    pub async fn watch(
        &mut self,
        prefix: &str,
        revision: i64,
    ) -> Result<etcd_client::WatchStream, EtcdError> {
        let key = self.full(prefix);
        self.client
            .watch(
                key,
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(revision),
                ),
            )
            .await
            .map_err(|e| self.fail(e))
    }

    /// Compare-and-swap: if every `(key, mod_revision)` still holds (0: the key does not
    /// exist), puts every `(key, value)`, each bound to its lease if it names one. Whether
    /// it did.
    pub async fn swap(
        &mut self,
        expect: &[(String, i64)],
        puts: Vec<(String, Vec<u8>, Option<i64>)>,
    ) -> Result<bool, EtcdError> {
        let when: Vec<Compare> = expect
            .iter()
            .map(|(k, rev)| Compare::mod_revision(self.full(k), CompareOp::Equal, *rev))
            .collect();
        let ops: Vec<TxnOp> = puts
            .into_iter()
            .map(|(k, v, lease)| {
                let options = lease.map(|l| PutOptions::new().with_lease(l));
                TxnOp::put(self.full(&k), v, options)
            })
            .collect();
        let r = self
            .client
            .txn(Txn::new().when(when).and_then(ops))
            .await
            .map_err(|e| self.fail(e))?;
        Ok(r.succeeded())
    }

    /// One key (under the region), if it exists.
    pub async fn get(&mut self, key: &str) -> Result<Option<Entry>, EtcdError> {
        let full = self.full(key);
        let r = self
            .client
            .get(full, None)
            .await
            .map_err(|e| self.fail(e))?;
        Ok(r.kvs().first().map(|kv| Entry {
            key: key.to_string(),
            value: kv.value().to_vec(),
            mod_revision: kv.mod_revision(),
        }))
    }

    /// If every condition holds, does every op; the revision the transaction made when it
    /// did (`None`: a condition failed and nothing changed).
    pub async fn txn(&mut self, when: Vec<Cond>, ops: Vec<Op>) -> Result<Option<i64>, EtcdError> {
        let when: Vec<Compare> = when
            .into_iter()
            .map(|c| match c {
                Cond::ModRev(k, rev) => Compare::mod_revision(self.full(&k), CompareOp::Equal, rev),
                Cond::Value(k, v) => Compare::value(self.full(&k), CompareOp::Equal, v),
            })
            .collect();
        let ops: Vec<TxnOp> = ops
            .into_iter()
            .map(|o| match o {
                Op::Put(k, v) => TxnOp::put(self.full(&k), v, None),
                Op::Delete(k) => TxnOp::delete(self.full(&k), None),
            })
            .collect();
        let r = self
            .client
            .txn(Txn::new().when(when).and_then(ops))
            .await
            .map_err(|e| self.fail(e))?;
        Ok(r.succeeded()
            .then(|| r.header().map(|h| h.revision()).unwrap_or(0)))
    }
}
