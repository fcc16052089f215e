//! The causation chain of events started by workflows, and the bounds that stop event loops.
//!
//! An event published by a step carries `chain`: the workflow ids from the origin of the chain
//! to the execution that emitted it (its depth is the chain's length; an event from outside,
//! e.g. `POST /events`, has none). An execution started by an event remembers the event's
//! chain plus its own workflow id, and the events its steps publish carry that.
//!
//! Two bounds, checked by the emitting step (which refuses to publish) and again when an event
//! is routed (which refuses to start):
//! * depth: a chain holds at most `max_depth` executions, origin included, so an event whose
//!   chain is already `max_depth` long starts nothing;
//! * revisits: a chain holds the same workflow at most `max_revisits` times.

use serde_json::{Value, json};

use crate::error::StepError;

/// The bounds of a causation chain (a deployment's settings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventLimits {
    /// The most executions one chain may hold, the origin included.
    pub max_depth: u32,
    /// The most times one chain may hold the same workflow.
    pub max_revisits: u32,
}

impl Default for EventLimits {
    fn default() -> Self {
        Self {
            max_depth: 8,
            max_revisits: 3,
        }
    }
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChainRefusal {
    /// The chain is `depth` long and may not grow past `limit`.
    Depth { depth: usize, limit: u32 },
    /// `workflow_id` is already `count` times in the chain, the most allowed (`limit`).
    Revisit {
        workflow_id: String,
        count: usize,
        limit: u32,
    },
}

impl ChainRefusal {
    /// The metric label: `depth` or `revisit`.
    pub fn reason(&self) -> &'static str {
        match self {
            ChainRefusal::Depth { .. } => "depth",
            ChainRefusal::Revisit { .. } => "revisit",
        }
    }

    /// One sentence naming the chain, its depth and the limit.
    pub fn describe(&self, chain: &[String]) -> String {
        let shown = display_chain(chain);
        match self {
            ChainRefusal::Depth { depth, limit } => format!(
                "event loop bounded: the causation chain {shown} is {depth} deep, at the depth limit of {limit} (WF_EVENT_MAX_DEPTH)"
            ),
            ChainRefusal::Revisit {
                workflow_id,
                count,
                limit,
            } => format!(
                "event loop bounded: the causation chain {shown} (depth {}) already runs workflow {workflow_id:?} {count} times, the revisit limit of {limit}",
                chain.len()
            ),
        }
    }

    /// The `event.loop` step error: not retryable (another attempt meets the same chain).
    pub fn step_error(&self, chain: &[String]) -> StepError {
        StepError::new("event.loop", self.describe(chain)).with_details(self.details(chain))
    }

    /// The facts as JSON: reason, chain, depth, limit (and the revisited workflow).
    pub fn details(&self, chain: &[String]) -> Value {
        let mut v = json!({
            "reason": self.reason(),
            "chain": chain,
            "depth": chain.len(),
        });
        match self {
            ChainRefusal::Depth { limit, .. } => v["limit"] = json!(limit),
            ChainRefusal::Revisit {
                workflow_id, limit, ..
            } => {
                v["limit"] = json!(limit);
                v["workflowId"] = json!(workflow_id);
            }
        }
        v
    }
}

/// `a -> b -> c`, or `(empty)`.
fn display_chain(chain: &[String]) -> String {
    if chain.is_empty() {
        "(empty)".to_string()
    } else {
        chain.join(" -> ")
    }
}

fn count(chain: &[String], workflow_id: &str) -> usize {
    chain.iter().filter(|w| w.as_str() == workflow_id).count()
}

/// Whether an execution whose chain is `chain` (ending with its own workflow id) may publish an
/// event: not when the chain is at the depth limit, nor when its own workflow is already in it
/// `max_revisits` times (the event could only start it once more).
pub fn check_emit(chain: &[String], limits: EventLimits) -> Result<(), ChainRefusal> {
    if chain.len() >= limits.max_depth as usize {
        return Err(ChainRefusal::Depth {
            depth: chain.len(),
            limit: limits.max_depth,
        });
    }
    match chain.last() {
        Some(own) => check_revisits(chain, own, limits),
        None => Ok(()),
    }
}

/// Refuse a chain that already holds `workflow_id` `max_revisits` times.
fn check_revisits(
    chain: &[String], workflow_id: &str, limits: EventLimits,
) -> Result<(), ChainRefusal> {
    let n = count(chain, workflow_id);
    if n >= limits.max_revisits as usize {
        return Err(ChainRefusal::Revisit {
            workflow_id: workflow_id.to_string(),
            count: n,
            limit: limits.max_revisits,
        });
    }
    Ok(())
}

/// Whether an event carrying `chain` may start workflow `target`: what [`check_emit`] refuses,
/// and a chain that already holds `target` `max_revisits` times.
pub fn check_route(
    chain: &[String], target: &str, limits: EventLimits,
) -> Result<(), ChainRefusal> {
    check_emit(chain, limits)?;
    check_revisits(chain, target, limits)
}

/// The chain of an execution started by an event carrying `chain`: that chain plus its own
/// workflow id.
pub fn extend(chain: &[String], workflow_id: &str) -> Vec<String> {
    let mut out = chain.to_vec();
    out.push(workflow_id.to_string());
    out
}

/// The chain stored in an execution's trigger details (`trigger.chain`), if any.
pub fn from_trigger(details: &serde_json::Map<String, Value>) -> Vec<String> {
    details
        .get("chain")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chain(ids: &[&str]) -> Vec<String> {
        ids.iter().map(|s| s.to_string()).collect()
    }

    const LIMITS: EventLimits = EventLimits {
        max_depth: 4,
        max_revisits: 2,
    };

    #[test]
    fn an_empty_chain_passes() {
        assert_eq!(check_emit(&[], LIMITS), Ok(()));
        assert_eq!(check_route(&[], "a", LIMITS), Ok(()));
    }

    #[test]
    fn depth_is_the_chain_length() {
        assert_eq!(check_emit(&chain(&["a", "b", "c"]), LIMITS), Ok(()));
        let refused = check_emit(&chain(&["a", "b", "c", "d"]), LIMITS).unwrap_err();
        assert_eq!(refused, ChainRefusal::Depth { depth: 4, limit: 4 });
        assert_eq!(refused.reason(), "depth");
        let msg = refused.describe(&chain(&["a", "b", "c", "d"]));
        assert!(
            msg.contains("a -> b -> c -> d") && msg.contains("limit of 4"),
            "{msg}"
        );
    }

    #[test]
    fn revisits_are_bounded_on_emit_and_on_route() {
        let refused = check_emit(&chain(&["a", "a"]), LIMITS).unwrap_err();
        assert_eq!(refused.reason(), "revisit");
        assert_eq!(check_emit(&chain(&["a", "b"]), LIMITS), Ok(()));
        assert_eq!(check_route(&chain(&["a", "b"]), "c", LIMITS), Ok(()));
        assert_eq!(check_route(&chain(&["a", "b"]), "a", LIMITS), Ok(()));
        let refused = check_route(&chain(&["a", "b", "a"]), "a", LIMITS).unwrap_err();
        assert!(matches!(
            refused,
            ChainRefusal::Revisit {
                count: 2,
                limit: 2,
                ..
            }
        ));
        let err = refused.step_error(&chain(&["a", "b", "a"]));
        assert_eq!(err.code, "event.loop");
        assert!(!err.retryable);
    }

    #[test]
    fn the_trigger_details_hold_the_chain() {
        let mut details = serde_json::Map::new();
        assert!(from_trigger(&details).is_empty());
        details.insert("chain".into(), json!(["a", "b"]));
        assert_eq!(from_trigger(&details), chain(&["a", "b"]));
        assert_eq!(extend(&chain(&["a"]), "b"), chain(&["a", "b"]));
    }
}
