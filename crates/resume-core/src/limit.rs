//! A cap on ranged requests in flight shared by several downloads ([`ConnectionLimit`]), so a
//! batch job's `--jobs` bounds its connections across every object it downloads at once.

use std::fmt;
use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// At most `n` part requests in flight across every [`Downloader`](crate::Downloader) given a
/// clone of this limit ([`Downloader::connection_limit`](crate::Downloader::connection_limit)).
///
/// A worker holds one permit while it fetches one part (its requests, retries and their
/// back-off included) and gives it back before it claims the next part, so an object with
/// parts left never keeps a connection idle that another object could use. Waiters are
/// served in the order they asked (tokio's semaphore is fair): when only a few large objects
/// remain at the end of a job, their workers get every permit. Stat requests are not counted
/// (a batch job gives downloads their metadata from the listing and sends none); the read
/// that describes a one-part object before it is planned takes a permit, which the part's
/// worker then keeps.
///
/// Cloning gives another handle to the same limit.
#[derive(Clone)]
pub struct ConnectionLimit {
    permits: Arc<Semaphore>,
    max: usize,
}

impl ConnectionLimit {
    /// A limit of `max` requests in flight (at least 1).
    pub fn new(max: usize) -> Self {
        let max = max.clamp(1, Semaphore::MAX_PERMITS);
        Self {
            permits: Arc::new(Semaphore::new(max)),
            max,
        }
    }

    /// The limit.
    pub fn max(&self) -> usize {
        self.max
    }

    /// Requests that could start now without waiting.
    pub fn available(&self) -> usize {
        self.permits.available_permits()
    }

    /// Waits for a permit; dropping it gives it back.
    pub(crate) async fn acquire(&self) -> OwnedSemaphorePermit {
        // The semaphore is never closed, so acquiring cannot fail.
        Arc::clone(&self.permits)
            .acquire_owned()
            .await
            .expect("the connection limit's semaphore is never closed")
    }
}

impl fmt::Debug for ConnectionLimit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionLimit")
            .field("max", &self.max)
            .field("available", &self.available())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn permits_are_shared_by_clones_and_returned_on_drop() {
        let limit = ConnectionLimit::new(2);
        let other = limit.clone();
        let a = limit.acquire().await;
        let _b = other.acquire().await;
        assert_eq!(limit.available(), 0);
        let waiting = tokio::spawn({
            let limit = limit.clone();
            async move {
                let _c = limit.acquire().await;
            }
        });
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        drop(a);
        waiting.await.unwrap();
        assert_eq!(limit.available(), 1);
        assert_eq!(ConnectionLimit::new(0).max(), 1);
    }
}
