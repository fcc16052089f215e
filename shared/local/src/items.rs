//! Item helpers shared by the store, the queue and the bus: JSON bodies with a size limit,
//! prefix ranges. The sort keys themselves are `wf_core::keys` (the same as on DynamoDB).

use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use wf_core::{StoreError, StoreResult};

use crate::db::map_err;

/// DynamoDB's item limit (400 KB), applied to every item so that a workflow that works locally
/// also works on AWS.
pub const MAX_ITEM_BYTES: usize = 400 * 1024;

/// Serialize an item body, refusing it when the item (keys + body) is over the limit.
pub(crate) fn to_body<T: Serialize + ?Sized>(
    value: &T, pk: &str, sk: &str, limit: usize,
) -> StoreResult<String> {
    let body = serde_json::to_string(value)
        .map_err(|e| StoreError::Permanent(format!("cannot encode item {pk}/{sk}: {e}")))?;
    check_size(pk, sk, body.len(), limit)?;
    Ok(body)
}

/// Refuse an item of `body_len` bytes (plus its keys) over `limit`.
pub(crate) fn check_size(pk: &str, sk: &str, body_len: usize, limit: usize) -> StoreResult<()> {
    let size = pk.len() + sk.len() + body_len;
    if size > limit {
        return Err(StoreError::TooLarge(format!(
            "item {pk}/{sk} is {size} bytes; the limit is {limit} bytes ({} KB)",
            limit / 1024
        )));
    }
    Ok(())
}

/// Decode an item body.
pub(crate) fn from_body<T: DeserializeOwned>(body: &str, pk: &str, sk: &str) -> StoreResult<T> {
    serde_json::from_str(body)
        .map_err(|e| StoreError::Permanent(format!("cannot decode item {pk}/{sk}: {e}")))
}

/// `[prefix, upper)` covers exactly the keys starting with `prefix` (an `sk LIKE` would treat
/// `_` and `%` in step ids as wildcards).
pub(crate) fn prefix_upper(prefix: &str) -> String {
    let mut chars: Vec<char> = prefix.chars().collect();
    match chars.pop() {
        Some(last) => {
            let next = char::from_u32(last as u32 + 1).unwrap_or(char::MAX);
            chars.push(next);
            chars.into_iter().collect()
        }
        None => char::MAX.to_string(),
    }
}

/// The body of one `executions` item.
pub(crate) fn get_exec_item(conn: &Connection, pk: &str, sk: &str) -> StoreResult<Option<String>> {
    conn.prepare_cached("SELECT body FROM executions WHERE pk = ?1 AND sk = ?2")
        .and_then(|mut st| st.query_row(params![pk, sk], |r| r.get(0)).optional())
        .map_err(map_err)
}

/// One `executions` item, decoded.
pub(crate) fn load_exec_item<T: DeserializeOwned>(
    conn: &Connection, pk: &str, sk: &str,
) -> StoreResult<Option<T>> {
    get_exec_item(conn, pk, sk)?
        .map(|body| from_body(&body, pk, sk))
        .transpose()
}

/// The `(sk, body)` of the `executions` items of `pk` whose sort key starts with `prefix`, in
/// sort key order.
pub(crate) fn exec_items_with_prefix(
    conn: &Connection, pk: &str, prefix: &str,
) -> StoreResult<Vec<(String, String)>> {
    let mut st = conn
        .prepare_cached(
            "SELECT sk, body FROM executions WHERE pk = ?1 AND sk >= ?2 AND sk < ?3 ORDER BY sk",
        )
        .map_err(map_err)?;
    st.query_map(params![pk, prefix, prefix_upper(prefix)], |r| {
        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
    })
    .map_err(map_err)?
    .collect::<Result<Vec<_>, _>>()
    .map_err(map_err)
}

/// Put (insert or replace) one non-EXEC `executions` item.
pub(crate) fn put_exec_item(conn: &Connection, pk: &str, sk: &str, body: &str) -> StoreResult<()> {
    conn.prepare_cached(
        "INSERT INTO executions (pk, sk, body) VALUES (?1, ?2, ?3)
         ON CONFLICT (pk, sk) DO UPDATE SET body = excluded.body",
    )
    .and_then(|mut st| st.execute(params![pk, sk, body]))
    .map_err(map_err)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    use wf_core::keys::{iter_prefix, iter_sk};

    #[test]
    fn keys_sort_and_parse() {
        assert_eq!(prefix_upper("ITER#each["), "ITER#each\\");
        assert!(iter_sk("each", 1) < prefix_upper(&iter_prefix("each")));
        assert!(iter_sk("each_x", 1) > prefix_upper(&iter_prefix("each")));
        assert_eq!(prefix_upper(""), char::MAX.to_string());
    }

    #[test]
    fn size_limit_names_the_item() {
        let big = "x".repeat(MAX_ITEM_BYTES);
        let err = to_body(&big, "exec1", "STEP#a", MAX_ITEM_BYTES).unwrap_err();
        match err {
            StoreError::TooLarge(m) => assert!(m.contains("exec1/STEP#a"), "{m}"),
            other => panic!("{other:?}"),
        }
        assert!(to_body(&"small", "p", "s", MAX_ITEM_BYTES).is_ok());
    }
}
