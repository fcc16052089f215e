//! The records of the executions this process is working on, kept between their tasks.
//!
//! Every step task starts from its execution's record, and a record holds the execution's
//! input, which may be large (a loop over 100,000 input items runs 100,000 tasks over the same
//! record). What a record can change after its creation is its status and, with the terminal
//! one, its result; so a kept record whose stored status is still the kept one is the stored
//! record, and a task asks the store only for the status (`ExecutionStore::
//! get_execution_status`). Terminal records are never kept (a task of a finished execution only
//! needs to know it is finished).
//!
//! A small map with first-in-first-out eviction: a hand-written dozen lines rather than an LRU
//! crate, as the entries are cheap to lose (a miss is one full read).

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use wf_core::execution::ExecutionRecord;

/// How many executions' records are kept (the oldest kept is dropped first).
pub const LIVE_CAPACITY: usize = 256;

#[derive(Default)]
pub(crate) struct LiveExecutions {
    records: HashMap<String, Arc<ExecutionRecord>>,
    order: VecDeque<String>,
}

impl LiveExecutions {
    pub fn get(&self, id: &str) -> Option<Arc<ExecutionRecord>> {
        self.records.get(id).cloned()
    }

    /// Keep `record` (replacing what was kept for its id), or forget it when it is terminal.
    pub fn keep(&mut self, record: &Arc<ExecutionRecord>) {
        if record.status.is_terminal() {
            self.forget(&record.id);
            return;
        }
        if self
            .records
            .insert(record.id.clone(), record.clone())
            .is_none()
        {
            self.order.push_back(record.id.clone());
            while self.order.len() > LIVE_CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.records.remove(&old);
                }
            }
        }
    }

    pub fn forget(&mut self, id: &str) {
        if self.records.remove(id).is_some() {
            self.order.retain(|k| k != id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use wf_core::execution::{ExecutionStatus, TriggerInfo};

    fn record(id: &str, status: ExecutionStatus) -> Arc<ExecutionRecord> {
        Arc::new(ExecutionRecord {
            id: id.into(),
            workflow_id: "w".into(),
            version: 1,
            status,
            trigger: TriggerInfo::new("manual"),
            input: json!({}),
            output: json!(null),
            error: None,
            started_at: 0,
            finished_at: None,
            duration_ms: None,
            deadline_at: 1,
            rerun_of: None,
            handoff: Vec::new(),
        })
    }

    #[test]
    fn keeps_live_records_and_drops_the_oldest_past_capacity() {
        let mut live = LiveExecutions::default();
        for i in 0..LIVE_CAPACITY + 10 {
            live.keep(&record(&format!("e{i}"), ExecutionStatus::Running));
        }
        assert!(live.get("e0").is_none());
        assert!(live.get("e9").is_none());
        assert!(live.get("e10").is_some());
        assert_eq!(live.records.len(), LIVE_CAPACITY);
        assert_eq!(live.order.len(), LIVE_CAPACITY);
        // Keeping a newer record of a kept id replaces it without growing the order.
        live.keep(&record("e10", ExecutionStatus::Queued));
        assert_eq!(live.get("e10").unwrap().status, ExecutionStatus::Queued);
        assert_eq!(live.order.len(), LIVE_CAPACITY);
    }

    #[test]
    fn terminal_records_are_forgotten() {
        let mut live = LiveExecutions::default();
        live.keep(&record("a", ExecutionStatus::Running));
        live.keep(&record("a", ExecutionStatus::Succeeded));
        assert!(live.get("a").is_none());
        assert!(live.order.is_empty());
        live.keep(&record("b", ExecutionStatus::Failed));
        assert!(live.get("b").is_none());
    }
}
