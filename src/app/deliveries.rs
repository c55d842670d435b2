//! The handle's delivery calls: list and read deliveries, retry one, replay dead letters.
//! Reads run on a blocking thread (the SQLite backend reads from disk).

use chrono::{DateTime, Utc};

use super::Handle;
use crate::store::{Detail, Page, Query, Requeue, State, Store, StoreError};
use crate::supervisor::Requeued;

/// Why a retry or a replay was not done.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RequeueError {
    /// No delivery has that id.
    #[error("no delivery with id `{0}`")]
    UnknownDelivery(String),
    /// The delivery is neither dead nor held.
    #[error("delivery `{id}` is {state}: only dead or held deliveries can be retried")]
    NotRetryable {
        /// The delivery.
        id: String,
        /// Its state.
        state: State,
    },
    /// No instance has that name.
    #[error("no plugin instance named `{name}`; configured: {known}")]
    UnknownPlugin {
        /// What was asked for.
        name: String,
        /// The instance names.
        known: String,
    },
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Handle {
    /// The delivery store.
    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// Deliveries as `query` asks, newest first.
    pub async fn deliveries(&self, query: Query) -> Result<Page, StoreError> {
        let store = self.inner.store.clone();
        blocking(move || store.list(&query)).await
    }

    /// One delivery with its attempts and event, by its public id.
    pub async fn delivery(&self, id: &str) -> Result<Option<Detail>, StoreError> {
        let (store, id) = (self.inner.store.clone(), id.to_owned());
        blocking(move || store.get(&id)).await
    }

    /// Send a dead or held delivery now (a 429 pause and the rate limit still apply; a
    /// misconfigured or open instance tries once more).
    pub async fn retry(&self, id: &str) -> Result<(), RequeueError> {
        let Some(seq) = self.inner.store.parse_id(id) else {
            return Err(RequeueError::UnknownDelivery(id.to_owned()));
        };
        let rows = self.requeue(Requeue::One(seq)).await?;
        if rows.is_empty() {
            return match self.delivery(id).await? {
                Some(d) => Err(RequeueError::NotRetryable {
                    id: id.to_owned(),
                    state: d.summary.state,
                }),
                None => Err(RequeueError::UnknownDelivery(id.to_owned())),
            };
        }
        self.inner
            .supervisor
            .do_send(Requeued { rows, retry: true });
        Ok(())
    }

    /// Requeue instance `plugin`'s dead letters (accepted since `since`), in their original
    /// order; answers how many.
    pub async fn replay(
        &self,
        plugin: &str,
        since: Option<DateTime<Utc>>,
    ) -> Result<usize, RequeueError> {
        let status = self.status().await;
        if !status.iter().any(|p| p.name == plugin) {
            let known: Vec<&str> = status.iter().map(|p| p.name.as_str()).collect();
            return Err(RequeueError::UnknownPlugin {
                name: plugin.to_owned(),
                known: if known.is_empty() {
                    "none".into()
                } else {
                    known.join(", ")
                },
            });
        }
        let rows = self
            .requeue(Requeue::Dead {
                instance: plugin.to_owned(),
                since: since.map(|t| t.timestamp_millis()),
            })
            .await?;
        let n = rows.len();
        if n > 0 {
            self.inner
                .supervisor
                .do_send(Requeued { rows, retry: false });
        }
        Ok(n)
    }

    async fn requeue(&self, which: Requeue) -> Result<Vec<crate::store::Unfinished>, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.inner.store.requeue(which, move |r| {
            let _ = tx.send(r);
        });
        rx.await.map_err(|_| StoreError::Closed)?
    }
}

/// Run a store read off the async threads.
async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Read(format!("the read did not finish: {e}"))))
}
