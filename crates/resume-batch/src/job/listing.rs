//! The listing: fetched page by page into a channel of one page, and which listed pages are
//! settled (every object on them done, up to date, skipped, excluded or failed), recorded in
//! order so that a rerun continues the listing after them.

use std::sync::Arc;
use std::time::Duration;

use resume_core::{ListPage, Lister, SourceError};
use tokio::sync::mpsc;

use super::run::{Run, RunStop};
use crate::journal::Record;

/// Transient listing failures are retried this many times, with exponential back-off.
const LISTING_ATTEMPTS: u32 = 6;

/// A listed page whose objects are not all settled yet.
#[derive(Debug)]
pub(super) struct PageTrack {
    pub(super) seq: u64,
    /// Objects of the page not settled yet.
    pub(super) outstanding: usize,
    /// Objects and bytes listed up to and including this page.
    pub(super) objects: u64,
    pub(super) bytes: u64,
    pub(super) next: Option<String>,
}

impl Run<'_> {
    /// One object of page `seq` is settled; records the pages now wholly settled, in order.
    pub(super) fn settle(&mut self, seq: u64) -> Result<(), RunStop> {
        if let Some(front) = self.pages.front()
            && let Some(p) = seq
                .checked_sub(front.seq)
                .and_then(|i| self.pages.get_mut(i as usize))
        {
            p.outstanding = p.outstanding.saturating_sub(1);
        }
        self.settle_front()
    }

    pub(super) fn settle_front(&mut self) -> Result<(), RunStop> {
        while !self.settle_blocked
            && let Some(front) = self.pages.front()
            && front.outstanding == 0
        {
            let p = self.pages.pop_front().expect("a front page");
            if let Some(j) = &mut self.journal {
                j.append(&Record::Settled {
                    page: p.seq,
                    objects: p.objects,
                    bytes: p.bytes,
                    next: p.next,
                })?;
            }
        }
        Ok(())
    }
}

/// Lists `prefix` page by page from `token` into `tx` (a channel of one page), retrying
/// transient failures; ends after the last page or the first lasting error.
pub(super) async fn list_pages(
    lister: Arc<dyn Lister>,
    prefix: String,
    mut token: Option<String>,
    tx: mpsc::Sender<Result<ListPage, SourceError>>,
) {
    loop {
        let mut attempt = 0u32;
        let page = loop {
            attempt += 1;
            match lister.list_page(&prefix, token.as_deref()).await {
                Err(e) if e.kind.is_retryable() && attempt < LISTING_ATTEMPTS => {
                    let delay = Duration::from_millis(200u64 << attempt.min(6));
                    tracing::debug!(error = %e, ?delay, "listing failed; retrying");
                    tokio::time::sleep(delay).await;
                }
                other => break other,
            }
        };
        let next = match &page {
            Ok(p) => p.next.clone(),
            Err(_) => None,
        };
        if tx.send(page).await.is_err() {
            return;
        }
        match next {
            Some(t) => token = Some(t),
            None => return,
        }
    }
}
