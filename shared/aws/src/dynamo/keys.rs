//! Table layout: key attribute names, sort keys, index names, TTL. The sort keys every store
//! shares are `wf_core::keys` (re-exported here); this module adds DynamoDB's own.
//!
//! * `workflows`: pk `id`, sk `DRAFT` | `V#000001` | `META`.
//! * `executions`: pk `executionId`, sk `EXEC` | `STEP#<path>` | `LOOP#<path>` (the join
//!   counter) | `LOOP#<path>#items#0000000002` (a page of the loop's items, apart so that
//!   counting stays a small write and an iteration reads one page) | `ITER#<path>[0000000003]`; dedupe keys are items with pk `DEDUPE#<workflow>#<key>`
//!   and sk `DEDUPE`. Two sparse, keys-only indexes over the `EXEC` items list executions newest
//!   first: `byWorkflow` (`workflowId`, `startedKey`) and `byStart` (`entity` = `EXEC`,
//!   `startedKey`). Every item of an execution carries the TTL attribute `ttl`.
//! * `records`: pk `collection`, sk `id`.

/// Partition and sort key attribute names.
pub const WORKFLOWS_PK: &str = "id";
pub const EXECUTIONS_PK: &str = "executionId";
pub const RECORDS_PK: &str = "collection";
pub const RECORDS_SK: &str = "id";
pub const SK: &str = "sk";

/// The TTL attribute (epoch seconds) of the executions table.
pub const TTL_ATTRIBUTE: &str = "ttl";

/// Index of executions by workflow, newest first.
pub const BY_WORKFLOW_INDEX: &str = "byWorkflow";
/// Index of every execution, newest first (partition `entity` = `EXEC`).
pub const BY_START_INDEX: &str = "byStart";
pub const WORKFLOW_ID_ATTR: &str = "workflowId";
pub const STARTED_KEY_ATTR: &str = "startedKey";
pub const ENTITY_ATTR: &str = "entity";
pub const EXEC_ENTITY: &str = "EXEC";

// The layout shared with every store: one definition in wf-core.
pub use wf_core::keys::{
    DRAFT_SK, EXEC_SK, LOOP_ITEMS_PER_PAGE, META_SK, STEP_PREFIX, iter_prefix, iter_sk,
    iteration_of, loop_item_page, loop_items_sk, loop_sk, step_sk, version_sk,
};

/// The sort key of dedupe items (pk [`dedupe_pk`]).
pub const DEDUPE_SK: &str = "DEDUPE";

pub fn dedupe_pk(key: &str) -> String {
    format!("DEDUPE#{key}")
}

/// Sort key of the listing indexes: start time (16 digits, so it sorts as text) then the id, so
/// executions that started in the same millisecond still have distinct, ordered keys.
pub fn started_key(started_at: i64, id: &str) -> String {
    format!("{:016}#{id}", started_at.max(0))
}

/// The bound of a start-time window in the `startedKey` space: every key of an execution that
/// started at `ms` or later is `>=` it, every key of one that started earlier is `<` it.
pub fn started_bound(ms: i64) -> String {
    format!("{:016}", ms.max(0))
}

/// The TTL (epoch seconds) of the items of execution `execution_id`: its start plus the
/// retention. Execution ids are ULIDs carrying their start time, so every item of an execution
/// expires together; an id that is not a ULID falls back to `fallback_ms`.
pub fn expiry(execution_id: &str, fallback_ms: i64, retention_days: u32) -> i64 {
    let start_ms = ulid::Ulid::from_string(execution_id)
        .ok()
        .map(|u| i64::try_from(u.timestamp_ms()).unwrap_or(fallback_ms))
        .unwrap_or(fallback_ms);
    start_ms.div_euclid(1000) + i64::from(retention_days) * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_sort_and_parse() {
        assert_eq!(dedupe_pk("wf#k"), "DEDUPE#wf#k");
        assert!(started_key(999, "z") < started_key(1000, "a"));
        assert!(started_key(1000, "a") < started_key(1000, "b"));
        assert!(started_bound(1000) <= started_key(1000, "a"));
        assert!(started_key(999, "zzzz") < started_bound(1000));
    }

    #[test]
    fn expiry_follows_the_ulid_start() {
        let id = ulid::Ulid::from_parts(1_700_000_000_123, 7).to_string();
        assert_eq!(expiry(&id, 0, 1), 1_700_000_000 + 86_400);
        assert_eq!(expiry("not-a-ulid", 5_000, 2), 5 + 2 * 86_400);
    }
}
