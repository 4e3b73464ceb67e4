//! The scheduler: one loop that takes listed pages, admits objects while fewer than
//! `2 × jobs` are in flight, and hands finished ones to their outcome. The connections
//! themselves are capped by the one `ConnectionLimit` every download shares.

use std::collections::VecDeque;
use std::time::Duration;

use resume_core::{ListPage, ListedObject, ObjectMeta, SourceError};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::JobEvent;
use super::listing::{PageTrack, list_pages};
use super::outcome::Finished;
use super::run::{Run, RunStop};
use crate::journal::{Record, SettledListing, key_hash};

impl Run<'_> {
    pub(super) async fn go(&mut self) -> Result<(), RunStop> {
        let job = self.job;
        let (tx, mut pages) = mpsc::channel::<Result<ListPage, SourceError>>(1);
        let mut listing = JoinSet::new();
        // Continue after the pages an earlier run settled; nothing to list if it settled all.
        let (start, listing_done) = match &self.resume {
            None => (None, false),
            Some(SettledListing { next: Some(t), .. }) => (Some(t.clone()), false),
            Some(SettledListing { next: None, .. }) => (None, true),
        };
        if !listing_done {
            listing.spawn(list_pages(
                job.lister.clone(),
                job.prefix.clone(),
                start,
                tx,
            ));
        }
        let mut listing_done = listing_done;
        let mut tasks: JoinSet<Finished> = JoinSet::new();
        let cap = job.jobs.saturating_mul(2).max(1);
        let mut queue: VecDeque<(u64, ListedObject)> = VecDeque::new();
        let mut listing_error = None;
        let mut ticker =
            tokio::time::interval(job.progress_interval.max(Duration::from_millis(10)));
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            while tasks.len() < cap && !self.stop.is_cancelled() {
                // Failed objects of settled pages first (no listing names them again): one
                // stat each, then the skip rules and the download.
                let (seq, obj, carried) = match self.carried.pop_front() {
                    Some((seq, key)) => {
                        let meta = ObjectMeta::default();
                        (seq, ListedObject { key, meta }, true)
                    }
                    None => match queue.pop_front() {
                        Some((seq, obj)) => (seq, obj, false),
                        None => break,
                    },
                };
                if !self.consider(obj, seq, carried, &mut tasks)? {
                    self.settle(seq)?;
                }
            }
            let admitting = !self.stop.is_cancelled() && queue.is_empty() && !listing_done;
            if tasks.is_empty() && !admitting {
                break;
            }
            // Pages first: a page is only taken when the queue is empty, and admitting its
            // objects keeps the connections busy; finished objects are bookkeeping.
            tokio::select! {
                biased;
                page = pages.recv(), if admitting => match page {
                    Some(Ok(page)) => {
                        let n = page.objects.len() as u64;
                        let b: u64 = page.objects.iter().map(|o| o.meta.size).sum();
                        self.totals.listed += n;
                        self.totals.listed_bytes += b;
                        if let Some(j) = &mut self.journal {
                            j.append(&Record::Listed {
                                objects: self.totals.listed,
                                bytes: self.totals.listed_bytes,
                                next: page.next.clone(),
                            })?;
                        }
                        job.emit(&JobEvent::Listed {
                            objects: self.totals.listed,
                            bytes: self.totals.listed_bytes,
                        });
                        let seq = self.next_page;
                        self.next_page += 1;
                        self.pages.push_back(PageTrack {
                            seq,
                            outstanding: page.objects.len(),
                            objects: self.totals.listed,
                            bytes: self.totals.listed_bytes,
                            next: page.next,
                        });
                        if !self.unseen.is_empty() {
                            for o in &page.objects {
                                self.unseen.remove(&key_hash(&o.key));
                            }
                        }
                        queue.extend(page.objects.into_iter().map(|o| (seq, o)));
                        self.settle_front()?;
                    }
                    Some(Err(e)) => {
                        listing_error = Some(e);
                        listing_done = true;
                    }
                    None => listing_done = true,
                },
                Some(done) = tasks.join_next(), if !tasks.is_empty() => {
                    match done {
                        Ok(f) => self.finished(f, &mut tasks)?,
                        Err(e) if e.is_panic() => std::panic::resume_unwind(e.into_panic()),
                        Err(_) => {}
                    }
                }
                _ = self.stop.cancelled(), if !self.stop.is_cancelled() => {}
                _ = ticker.tick(), if job.events.is_some() => self.progress(false),
            }
        }
        if listing_error.is_none() && !self.stop.is_cancelled() {
            self.forget_unlisted()?;
        }
        self.progress(true);
        match listing_error {
            Some(e) => Err(RunStop::Listing(e)),
            None => Ok(()),
        }
    }
}
