//! Events that reached a subscribed workflow and started nothing: the filter failed to
//! evaluate, the detail did not match the workflow's input schema, the start was refused, or
//! the causation chain was at its bound. Each is kept (per workflow, newest first) so the API
//! and the console can show it; the metrics count them too.
//!
//! A rejection is keyed by the event's time and id, so a redelivered event writes the same item
//! again (idempotent).

use serde::{Deserialize, Serialize};

use crate::time_fmt::rfc3339;

/// Longest `message` kept: a schema error naming every field of a large detail is cut here.
pub const REJECTION_MESSAGE_MAX_CHARS: usize = 1_000;

/// Why an event started no execution of a workflow that subscribes to its type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum RejectionReason {
    /// The trigger's `filter` could not be evaluated (a false filter is not a rejection).
    Filter,
    /// The event's detail is not a valid input of the workflow (its `inputSchema`).
    Input,
    /// The start was refused for another permanent reason.
    Start,
    /// The causation chain is at the depth limit.
    Depth,
    /// The chain revisits this workflow too often.
    Revisit,
}

impl RejectionReason {
    /// The metric label and stored value: `filter`, `input`, `start`, `depth`, `revisit`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectionReason::Filter => "filter",
            RejectionReason::Input => "input",
            RejectionReason::Start => "start",
            RejectionReason::Depth => "depth",
            RejectionReason::Revisit => "revisit",
        }
    }
}

/// One event one workflow did not start on, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct EventRejection {
    pub workflow_id: String,
    pub event_id: String,
    pub event_type: String,
    pub source: String,
    /// When the event happened (RFC 3339; ms since the epoch in Rust): with the id, the key.
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub event_time: i64,
    pub reason: RejectionReason,
    /// What went wrong, at most [`REJECTION_MESSAGE_MAX_CHARS`] characters.
    pub message: String,
    /// When it was rejected (RFC 3339).
    #[serde(with = "rfc3339")]
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = DateTime))]
    pub rejected_at: i64,
}

impl EventRejection {
    /// `message` cut to [`REJECTION_MESSAGE_MAX_CHARS`] (with `…` when cut).
    pub fn with_message(mut self, message: &str) -> Self {
        self.message = if message.chars().count() > REJECTION_MESSAGE_MAX_CHARS {
            let mut cut: String = message.chars().take(REJECTION_MESSAGE_MAX_CHARS).collect();
            cut.push('…');
            cut
        } else {
            message.to_string()
        };
        self
    }
}

/// A page of rejections, newest first.
pub type RejectionPage = crate::keys::Page<EventRejection>;

#[cfg(test)]
mod tests {
    use super::*;

    fn rejection() -> EventRejection {
        EventRejection {
            workflow_id: "w".into(),
            event_id: "e1".into(),
            event_type: "order.created".into(),
            source: "api".into(),
            event_time: 1,
            reason: RejectionReason::Input,
            message: String::new(),
            rejected_at: 2,
        }
    }

    #[test]
    fn long_messages_are_cut_on_a_char_boundary() {
        let long = "é".repeat(REJECTION_MESSAGE_MAX_CHARS + 5);
        let r = rejection().with_message(&long);
        assert_eq!(r.message.chars().count(), REJECTION_MESSAGE_MAX_CHARS + 1);
        assert!(r.message.ends_with('…'));
        assert_eq!(rejection().with_message("short").message, "short");
    }

    #[test]
    fn serializes_in_camel_case_with_a_snake_case_reason() {
        let v = serde_json::to_value(rejection()).unwrap();
        assert_eq!(v["reason"], "input");
        assert_eq!(v["eventType"], "order.created");
        let back: EventRejection = serde_json::from_value(v).unwrap();
        assert_eq!(back, rejection());
    }
}
