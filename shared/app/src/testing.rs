//! Test doubles (feature `test-support`, for tests of this crate and of others): never part
//! of a production build.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use async_trait::async_trait;
use aws_lambda_events::event::sqs::{SqsEvent, SqsMessage, SqsMessageAttribute};
use aws_sdk_sqs::types::Message;
use tokio::sync::watch;
use wf_core::ports::Clock;

use crate::triggers::schedule::Sleeper;

/// A clock that moves only when told, and a [`Sleeper`] on it: tests and simulations drive a
/// [`Scheduler`] through hours or months of schedule in milliseconds. Several schedulers may
/// share one.
pub struct ManualClock {
    state: Mutex<ManualState>,
    /// Bumped on every change (time moved, a sleeper parked or left).
    tick: watch::Sender<u64>,
}

struct ManualState {
    now: i64,
    /// Sleepers waiting, by ticket: the time each waits for.
    parked: BTreeMap<u64, i64>,
    next_ticket: u64,
    parks: u64,
}

impl ManualClock {
    pub fn new(now_ms: i64) -> Arc<Self> {
        Arc::new(Self {
            state: Mutex::new(ManualState {
                now: now_ms,
                parked: BTreeMap::new(),
                next_ticket: 0,
                parks: 0,
            }),
            tick: watch::channel(0).0,
        })
    }

    fn lock(&self) -> MutexGuard<'_, ManualState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn bump(&self) {
        self.tick.send_modify(|v| *v = v.wrapping_add(1));
    }

    /// Move the clock to `ms` (waking the sleepers whose time has come).
    pub fn set(&self, ms: i64) {
        self.lock().now = ms;
        self.bump();
    }

    /// Move the clock forward by `ms`.
    pub fn advance(&self, ms: i64) {
        self.lock().now += ms;
        self.bump();
    }

    /// How many times a sleeper started waiting, ever.
    pub fn parks(&self) -> u64 {
        self.lock().parks
    }

    /// The times the sleepers waiting now wait for, earliest first.
    pub fn parked(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.lock().parked.values().copied().collect();
        v.sort_unstable();
        v
    }

    /// Wait (for real, briefly) until at least `n` sleepers wait for a time after now: the
    /// schedulers on this clock have done everything due and are idle.
    pub async fn wait_parked(&self, n: usize) {
        let mut rx = self.tick.subscribe();
        loop {
            {
                let s = self.lock();
                if s.parked.values().filter(|&&at| at > s.now).count() >= n {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Wait until at least `n` sleepers are idle and at least one started waiting after the
    /// `parks()` count `since` (use it after changing a running scheduler's workflows).
    pub async fn wait_parked_since(&self, n: usize, since: u64) {
        let mut rx = self.tick.subscribe();
        loop {
            {
                let s = self.lock();
                if s.parks > since && s.parked.values().filter(|&&at| at > s.now).count() >= n {
                    return;
                }
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Run `n` sleepers' schedulers until the clock reads `until_ms`: repeatedly wait until
    /// all are idle, then move the clock to the earliest time one waits for, `late_ms` past it
    /// (a wake-up that late, as a busy machine has), never beyond `until_ms`.
    pub async fn run_until(&self, n: usize, until_ms: i64, late_ms: i64) {
        loop {
            self.wait_parked(n).await;
            let next = {
                let s = self.lock();
                s.parked.values().copied().filter(|&at| at > s.now).min()
            };
            match next {
                Some(at) if at <= until_ms => self.set((at + late_ms.max(0)).min(until_ms)),
                _ => {
                    self.set(until_ms);
                    self.wait_parked(n).await;
                    return;
                }
            }
        }
    }
}

impl Clock for ManualClock {
    fn now_ms(&self) -> i64 {
        self.lock().now
    }
}

/// Leaves the parked set when a sleep ends or is cancelled.
struct Unpark<'a> {
    clock: &'a ManualClock,
    ticket: u64,
}

impl Drop for Unpark<'_> {
    fn drop(&mut self) {
        self.clock.lock().parked.remove(&self.ticket);
        self.clock.bump();
    }
}

#[async_trait]
impl Sleeper for ManualClock {
    async fn sleep_until(&self, at_ms: i64) {
        let mut rx = self.tick.subscribe();
        let ticket = {
            let mut s = self.lock();
            let t = s.next_ticket;
            s.next_ticket += 1;
            s.parks += 1;
            s.parked.insert(t, at_ms);
            t
        };
        let _unpark = Unpark {
            clock: self,
            ticket,
        };
        self.bump();
        while self.now_ms() < at_ms {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// The SQS event the event source mapping would send for `messages`.
pub fn sqs_event(messages: &[Message], queue_arn: &str, region: &str) -> SqsEvent {
    let mut event = SqsEvent::default();
    for m in messages {
        let mut record = SqsMessage::default();
        record.message_id = m.message_id.clone();
        record.receipt_handle = m.receipt_handle.clone();
        record.body = m.body.clone();
        record.md5_of_body = m.md5_of_body.clone();
        record.md5_of_message_attributes = m.md5_of_message_attributes.clone();
        record.attributes = m
            .attributes
            .iter()
            .flatten()
            .map(|(k, v)| (k.as_str().to_string(), v.clone()))
            .collect();
        record.message_attributes = m
            .message_attributes
            .iter()
            .flatten()
            .map(|(k, v)| {
                let mut a = SqsMessageAttribute::default();
                a.string_value = v.string_value.clone();
                a.data_type = Some(v.data_type.clone());
                (k.clone(), a)
            })
            .collect();
        record.event_source = Some("aws:sqs".into());
        record.event_source_arn = Some(queue_arn.to_string());
        record.aws_region = Some(region.to_string());
        event.records.push(record);
    }
    event
}
