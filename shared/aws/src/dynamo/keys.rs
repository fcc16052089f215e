//! Table layout: key attribute names, sort keys, index names, TTL. The sort keys every store
//! shares are `wf_core::keys` (re-exported here); this module adds DynamoDB's own.
//!
//! * `workflows`: pk `id`, sk `DRAFT` | `V#000001` | `META`.
//! * `executions`: pk `executionId`, sk `EXEC` | `STEP#<path>` | `LOOP#<path>` (the join
//!   counter) | `LOOP#<path>#items#0000000002` (a page of the loop's items, apart so that
//!   counting stays a small write and an iteration reads one page) | `ITER#<path>[0000000003]`
//!   (a page of counted iterations' results, keyed by its first index: one attribute
//!   `r<index>` each); dedupe keys are items with pk `DEDUPE#<workflow>#<key>` and sk `DEDUPE`. Three sparse, keys-only indexes over the `EXEC` items list executions
//!   newest first: `byWorkflow` (`workflowId`, `startedKey`), `byStart` (`entity`, one of
//!   [`INDEX_SHARDS`] partitions: `EXEC`, `EXEC#1` … `EXEC#7`, `startedKey`) and `byLive`
//!   (`liveShard` = `LIVE#0` … `LIVE#7`, `startedKey`), which holds only the executions not yet
//!   terminal: `liveShard` is written with a queued execution and removed when it finishes, so
//!   the sweep and the `queued`/`running` filters read live work, not history. Four more serve
//!   the status and trigger filters, each reading only matching executions: `byStatus`
//!   (`statusShard` = `<status>#<n>`, terminal executions only, written once when it finishes),
//!   `byTrigger` (`triggerShard` = `<trigger>#<n>`, written with the execution),
//!   `byWorkflowStatus` (`workflowStatus` = `<workflowId>#live` while queued or running, then
//!   `<workflowId>#<status>`) and `byWorkflowTrigger` (`workflowTrigger` =
//!   `<workflowId>#<trigger>`). Every item of an execution carries the TTL attribute `ttl`.
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
/// Index of every execution, newest first (partitions [`exec_entities`]).
pub const BY_START_INDEX: &str = "byStart";
/// Index of the executions not yet terminal, newest first (partitions [`live_shards`]).
pub const BY_LIVE_INDEX: &str = "byLive";
pub const WORKFLOW_ID_ATTR: &str = "workflowId";
pub const STARTED_KEY_ATTR: &str = "startedKey";
pub const ENTITY_ATTR: &str = "entity";
pub const LIVE_SHARD_ATTR: &str = "liveShard";
/// A loop counter's marks, per lane (an iteration's lane is its index modulo the loop's
/// concurrency: a lane runs its iterations one after the other): the lowest index of the lane
/// still to be found in `counted`; every index of the lane below it is counted. A map of lane
/// numbers (as text) to indexes; a lane not in it (or a counter written before) is at its
/// first index.
pub const LANE_MARKS: &str = "lanes";
/// How many times the counter's `counted` set was compacted into its lane marks (guards a
/// compaction against another one).
pub const COMPACTIONS: &str = "compactions";
/// A loop counter's `counted` set is compacted once this many of its indexes follow their
/// lane's mark without a gap: the set stays about this size plus the iterations counted out
/// of order, whatever the loop's length (one extra write per this many counts).
pub const COMPACT_RUN: u32 = 64;
/// Index of the finished executions by status, newest first (partitions [`status_shards`]).
pub const BY_STATUS_INDEX: &str = "byStatus";
pub const STATUS_SHARD_ATTR: &str = "statusShard";
/// Index of executions by trigger type, newest first (partitions [`trigger_shards`]).
pub const BY_TRIGGER_INDEX: &str = "byTrigger";
pub const TRIGGER_SHARD_ATTR: &str = "triggerShard";
/// Index of one workflow's executions by status ([`workflow_status`]), newest first.
pub const BY_WORKFLOW_STATUS_INDEX: &str = "byWorkflowStatus";
pub const WORKFLOW_STATUS_ATTR: &str = "workflowStatus";
/// Index of one workflow's executions by trigger type ([`workflow_trigger`]), newest first.
pub const BY_WORKFLOW_TRIGGER_INDEX: &str = "byWorkflowTrigger";
pub const WORKFLOW_TRIGGER_ATTR: &str = "workflowTrigger";
/// The status part of `workflowStatus` that items written before it was only set at the
/// finish have while queued or running (replaced at their finish; never written now).
pub const LIVE_STATUS: &str = "live";
/// The `entity` of shard 0: the one partition of `byStart` before it was sharded, so items
/// written then are still listed.
pub const EXEC_ENTITY: &str = "EXEC";

/// Partitions of `byStart` and `byLive`: one GSI partition takes about 1,000 writes/s, so the
/// starts of all executions are spread over this many.
pub const INDEX_SHARDS: u32 = 8;

/// The index shard of an execution. FNV-1a over the id, written out because the shard is stored
/// and must be the same in every build (std's hasher is not specified to be stable).
pub fn shard_of(execution_id: &str) -> u32 {
    let hash = execution_id
        .bytes()
        .fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
        });
    (hash % u64::from(INDEX_SHARDS)) as u32
}

/// The `entity` (its `byStart` partition) of an execution's EXEC item.
pub fn exec_entity(execution_id: &str) -> String {
    entity_of_shard(shard_of(execution_id))
}

fn entity_of_shard(shard: u32) -> String {
    match shard {
        0 => EXEC_ENTITY.to_string(),
        n => format!("{EXEC_ENTITY}#{n}"),
    }
}

/// Every partition of `byStart`.
pub fn exec_entities() -> Vec<String> {
    (0..INDEX_SHARDS).map(entity_of_shard).collect()
}

/// The `liveShard` (its `byLive` partition) of a running or queued execution.
pub fn live_shard(execution_id: &str) -> String {
    format!("LIVE#{}", shard_of(execution_id))
}

/// Every partition of `byLive`.
pub fn live_shards() -> Vec<String> {
    (0..INDEX_SHARDS).map(|n| format!("LIVE#{n}")).collect()
}

/// The `statusShard` (its `byStatus` partition) of an execution finished with `status`.
pub fn status_shard(status: &str, execution_id: &str) -> String {
    format!("{status}#{}", shard_of(execution_id))
}

/// Every partition of `byStatus` holding `status`.
pub fn status_shards(status: &str) -> Vec<String> {
    (0..INDEX_SHARDS).map(|n| format!("{status}#{n}")).collect()
}

/// The `triggerShard` (its `byTrigger` partition) of an execution started by `trigger`.
pub fn trigger_shard(trigger: &str, execution_id: &str) -> String {
    format!("{trigger}#{}", shard_of(execution_id))
}

/// Every partition of `byTrigger` holding `trigger`.
pub fn trigger_shards(trigger: &str) -> Vec<String> {
    (0..INDEX_SHARDS)
        .map(|n| format!("{trigger}#{n}"))
        .collect()
}

/// The `workflowStatus` of an execution of `workflow_id`: `<workflowId>#<status>` once
/// terminal, `<workflowId>#live` ([`LIVE_STATUS`]) before. Workflow ids hold no `#`, so the
/// text is unambiguous.
pub fn workflow_status(workflow_id: &str, status: &str) -> String {
    format!("{workflow_id}#{status}")
}

/// The `workflowTrigger` of an execution of `workflow_id` started by `trigger`.
pub fn workflow_trigger(workflow_id: &str, trigger: &str) -> String {
    format!("{workflow_id}#{trigger}")
}

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
    fn shards_are_stable_and_spread() {
        // Stored in items: these values must never change.
        assert_eq!(shard_of(""), 0xcbf2_9ce4_8422_2325_u64.rem_euclid(8) as u32);
        assert_eq!(
            exec_entity("01JDAAAAAAAAAAAAAAAAAAAAAA"),
            exec_entity("01JDAAAAAAAAAAAAAAAAAAAAAA")
        );
        let mut seen = [0u32; INDEX_SHARDS as usize];
        for i in 0..8_000 {
            seen[shard_of(&ulid::Ulid::from_parts(1_700_000_000_000 + i, 0).to_string())
                as usize] += 1;
        }
        assert!(
            seen.iter().all(|n| *n > 600),
            "spread over every shard: {seen:?}"
        );
        assert_eq!(
            exec_entities()[0],
            "EXEC",
            "shard 0 is the pre-sharding partition"
        );
        assert_eq!(exec_entities().len(), 8);
        assert_eq!(live_shards()[3], "LIVE#3");
        assert!(live_shards().contains(&live_shard("x")));
        assert!(status_shards("failed").contains(&status_shard("failed", "x")));
        assert!(trigger_shards("schedule").contains(&trigger_shard("schedule", "x")));
        assert_eq!(
            status_shard("failed", "x"),
            format!("failed#{}", shard_of("x"))
        );
        assert_eq!(workflow_status("wf", LIVE_STATUS), "wf#live");
        assert_eq!(workflow_trigger("wf", "event"), "wf#event");
    }

    #[test]
    fn expiry_follows_the_ulid_start() {
        let id = ulid::Ulid::from_parts(1_700_000_000_123, 7).to_string();
        assert_eq!(expiry(&id, 0, 1), 1_700_000_000 + 86_400);
        assert_eq!(expiry("not-a-ulid", 5_000, 2), 5 + 2 * 86_400);
    }
}
