//! The SQL of `ExecutionStore::list_executions`: one statement per filter combination, each
//! answered by an index made for it (schema.rs, migration 3), newest first:
//!
//! | filter | index |
//! | --- | --- |
//! | none | `executions_by_start` |
//! | workflow | `executions_by_workflow` |
//! | status (any) | `executions_by_status` |
//! | trigger | `executions_by_trigger` |
//! | workflow + status | `executions_by_workflow_status` |
//! | workflow + trigger | `executions_by_workflow_trigger` |
//!
//! A version, a start window and a status with a trigger are filtered on the chosen index's
//! rows. The tests below hold the planner to this table with `EXPLAIN QUERY PLAN`.

use rusqlite::types::Value as SqlValue;
use wf_core::execution::ExecutionQuery;

/// The statement and its arguments listing `limit + 1` executions of `query` after `cursor`
/// (`(started_at, id)` of the last execution of the previous page).
pub(crate) fn executions_sql(
    query: &ExecutionQuery, cursor: Option<&(i64, String)>, limit: usize,
) -> (String, Vec<SqlValue>) {
    let mut sql = String::from(
        "SELECT pk, body, workflow_id, started_at, trigger_type, version
         FROM executions WHERE sk = 'EXEC'",
    );
    let mut args: Vec<SqlValue> = Vec::new();
    let mut arg = |sql: &mut String, clause: &str, value: SqlValue| {
        args.push(value);
        sql.push_str(&clause.replace('?', &format!("?{}", args.len())));
    };
    if let Some(workflow_id) = &query.workflow_id {
        arg(&mut sql, " AND workflow_id = ?", workflow_id.clone().into());
    }
    if let Some(status) = query.status {
        arg(
            &mut sql,
            " AND status = ?",
            status.as_str().to_string().into(),
        );
    }
    if let Some(trigger) = &query.trigger {
        arg(&mut sql, " AND trigger_type = ?", trigger.clone().into());
    }
    if let Some(version) = query.version {
        arg(&mut sql, " AND version = ?", i64::from(version).into());
    }
    if let Some(after) = query.started_after {
        arg(&mut sql, " AND started_at >= ?", after.into());
    }
    if let Some(before) = query.started_before {
        arg(&mut sql, " AND started_at < ?", before.into());
    }
    if let Some((started_at, id)) = cursor {
        // The first term bounds the index range (the planner seeks to it); the second drops
        // the executions of the cursor's millisecond already listed.
        arg(&mut sql, " AND started_at <= ?", (*started_at).into());
        arg(&mut sql, " AND (started_at < ?", (*started_at).into());
        arg(&mut sql, " OR pk < ?)", id.clone().into());
    }
    sql.push_str(" ORDER BY started_at DESC, pk DESC");
    arg(&mut sql, " LIMIT ?", ((limit + 1) as i64).into());
    (sql, args)
}

#[cfg(test)]
mod tests {
    use rusqlite::{Connection, params_from_iter};
    use wf_core::execution::ExecutionStatus;

    use super::*;

    /// The plan of `query`'s statement, one detail per line.
    fn plan(conn: &Connection, query: &ExecutionQuery, cursor: Option<&(i64, String)>) -> String {
        let (sql, args) = executions_sql(query, cursor, 50);
        let mut st = conn
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .expect("prepare");
        let rows = st
            .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(3))
            .expect("plan");
        rows.map(|r| r.expect("row")).collect::<Vec<_>>().join("\n")
    }

    #[test]
    fn every_filter_reads_its_index_newest_first() {
        let mut conn = Connection::open_in_memory().expect("open");
        crate::schema::migrate(&mut conn).expect("migrate");
        // Some rows, so that the planner does not take a tiny table for a scan.
        for i in 0..200 {
            conn.execute(
                "INSERT INTO executions (pk, sk, body, workflow_id, started_at, status,
                 trigger_type, version) VALUES (?1, 'EXEC', '{}', ?2, ?3, ?4, ?5, 1)",
                rusqlite::params![
                    format!("e{i:04}"),
                    format!("wf-{}", i % 7),
                    i,
                    ["succeeded", "failed", "running", "queued"][i % 4],
                    ["webhook", "schedule", "manual"][i % 3],
                ],
            )
            .expect("insert");
        }
        let wf = || Some("wf-1".to_string());
        let failed = Some(ExecutionStatus::Failed);
        let cases: Vec<(&str, ExecutionQuery, &str)> = vec![
            ("none", ExecutionQuery::default(), "executions_by_start"),
            (
                "workflow",
                ExecutionQuery {
                    workflow_id: wf(),
                    ..Default::default()
                },
                "executions_by_workflow ",
            ),
            (
                "status",
                ExecutionQuery {
                    status: failed,
                    ..Default::default()
                },
                "executions_by_status ",
            ),
            (
                "running",
                ExecutionQuery {
                    status: Some(ExecutionStatus::Running),
                    ..Default::default()
                },
                "executions_by_status ",
            ),
            (
                "trigger",
                ExecutionQuery {
                    trigger: Some("schedule".into()),
                    ..Default::default()
                },
                "executions_by_trigger ",
            ),
            (
                "workflow + status",
                ExecutionQuery {
                    workflow_id: wf(),
                    status: failed,
                    ..Default::default()
                },
                "executions_by_workflow_status ",
            ),
            (
                "workflow + queued",
                ExecutionQuery {
                    workflow_id: wf(),
                    status: Some(ExecutionStatus::Queued),
                    ..Default::default()
                },
                "executions_by_workflow_status ",
            ),
            (
                "workflow + trigger",
                ExecutionQuery {
                    workflow_id: wf(),
                    trigger: Some("schedule".into()),
                    ..Default::default()
                },
                "executions_by_workflow_trigger ",
            ),
        ];
        let cursor = (100, "e0100".to_string());
        for (name, query, index) in &cases {
            for cursor in [None, Some(&cursor)] {
                let plan = plan(&conn, query, cursor);
                assert!(
                    plan.contains(&format!("USING INDEX {index}"))
                        || plan.contains(&format!("USING COVERING INDEX {index}")),
                    "{name} (cursor {cursor:?}) reads {index}: {plan}"
                );
                // Newest first from the index itself: no sort of the matching rows.
                assert!(
                    !plan.contains("TEMP B-TREE"),
                    "{name} (cursor {cursor:?}) sorts: {plan}"
                );
                if cursor.is_some() {
                    assert!(
                        plan.contains("started_at<?"),
                        "{name}: the cursor bounds the index range: {plan}"
                    );
                }
            }
        }
    }
}
