//! The sort-key layout of the `workflows` and `executions` tables, shared by every store
//! (SQLite in wf-local, DynamoDB in wf-aws) so that both keep the very same items.
//!
//! * `workflows`: pk = the workflow id, sk [`DRAFT_SK`] | [`version_sk`] (`V#000001`) |
//!   [`META_SK`].
//! * `executions`: pk = the execution id, sk [`EXEC_SK`] | [`step_sk`] (`STEP#<path>`) |
//!   [`loop_sk`] (`LOOP#<path>`, the join counter) | [`loop_items_sk`]
//!   (`LOOP#<path>#items#0000000002`, a page of the loop's items) | [`iter_sk`]
//!   (`ITER#<path>[0000000003]`, a counted iteration's result); and pk [`rejections_pk`]
//!   (`REJECT#<workflow id>`), sk [`rejection_sk`] (`<event time>#<event id>`): the events a
//!   workflow did not start on.
//!
//! Adapter-only keys (dedupe items, index attributes) stay in the adapter that uses them.
//! Pure string functions; no I/O.

/// The execution record.
pub const EXEC_SK: &str = "EXEC";
/// The (possibly invalid) draft of a workflow.
pub const DRAFT_SK: &str = "DRAFT";
/// Activation state, webhook token and latest version of a workflow.
pub const META_SK: &str = "META";
/// Prefix of the step records of an execution.
pub const STEP_PREFIX: &str = "STEP#";
/// Prefix of the loop counters of an execution.
pub const LOOP_PREFIX: &str = "LOOP#";
/// Prefix of the counted iterations of an execution.
pub const ITER_PREFIX: &str = "ITER#";
/// Prefix of the published versions of a workflow.
pub const VERSION_PREFIX: &str = "V#";

/// Digits of the zero-padded iteration index of [`iter_sk`].
const INDEX_DIGITS: usize = 10;

/// `STEP#<path>`: the record of the step at `path` (`check`, `each[3]/price`).
pub fn step_sk(path: &str) -> String {
    format!("{STEP_PREFIX}{path}")
}

/// `LOOP#<path>`: the join counter of the loop at `path`.
pub fn loop_sk(path: &str) -> String {
    format!("{LOOP_PREFIX}{path}")
}

/// Items per page of a loop's items ([`loop_items_sk`]): an iteration reads one page, so a
/// page is small enough to read per iteration and large enough that a loop of 100,000 items
/// is written in 1,000 rows.
pub const LOOP_ITEMS_PER_PAGE: u32 = 100;

/// `LOOP#<path>#items#0000000002`: page `page` of the items of the loop at `loop_path`, items
/// `page * LOOP_ITEMS_PER_PAGE ..` (a JSON array). `#` is in no step id, so no loop path
/// collides with it; the pages sort after the counter and by page.
pub fn loop_items_sk(loop_path: &str, page: u32) -> String {
    format!("{LOOP_PREFIX}{loop_path}#items#{page:010}")
}

/// The page of item `index` and its offset in the page.
pub fn loop_item_page(index: u32) -> (u32, usize) {
    (
        index / LOOP_ITEMS_PER_PAGE,
        (index % LOOP_ITEMS_PER_PAGE) as usize,
    )
}

/// `ITER#<loop path>[0000000003]`: the result of iteration `index` of the loop at `loop_path`.
/// Ten digits hold any u32, so the items sort by index.
pub fn iter_sk(loop_path: &str, index: u32) -> String {
    format!("{ITER_PREFIX}{loop_path}[{index:010}]")
}

/// `ITER#<loop path>[`: the prefix of [`iter_sk`] of one loop. It also matches iterations of
/// loops nested in this one (`ITER#each[0000000001]/inner[...`): see [`iteration_of`].
pub fn iter_prefix(loop_path: &str) -> String {
    format!("{ITER_PREFIX}{loop_path}[")
}

/// The index of an `ITER#...[0000000003]` sort key.
pub fn iter_index(sk: &str) -> Option<u32> {
    let open = sk.rfind('[')?;
    sk[open + 1..].strip_suffix(']')?.parse().ok()
}

/// The index of `sk` when it is an iteration of exactly the loop at `loop_path` (not one of a
/// loop nested in it, whose keys share the [`iter_prefix`]).
pub fn iteration_of(loop_path: &str, sk: &str) -> Option<u32> {
    let digits = sk
        .strip_prefix(ITER_PREFIX)?
        .strip_prefix(loop_path)?
        .strip_prefix('[')?
        .strip_suffix(']')?;
    if digits.len() != INDEX_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// The sort key of an engine mark (pk [`mark_pk`]).
pub const MARK_SK: &str = "MARK";

/// `MARK#<name>`: the partition of one engine mark (no execution id has a `#`).
pub fn mark_pk(name: &str) -> String {
    format!("MARK#{name}")
}

/// Prefix of the partition of a workflow's event rejections in the `executions` table
/// (`REJECT#<workflow id>`; no execution id has a `#`).
pub const REJECTIONS_PREFIX: &str = "REJECT#";

/// `REJECT#<workflow id>`: the partition of the workflow's event rejections.
pub fn rejections_pk(workflow_id: &str) -> String {
    format!("{REJECTIONS_PREFIX}{workflow_id}")
}

/// `<event time, 16 digits>#<event id>`: one rejection, sorted by the event's time (a
/// redelivered event has the same key).
pub fn rejection_sk(event_time: i64, event_id: &str) -> String {
    format!("{:016}#{event_id}", event_time.max(0))
}

/// The text of a cursor made by [`encode_cursor`] from a `<16-digit time>#<id>` key (a
/// rejection's sort key, DynamoDB's `startedKey`); None when it is not one.
pub fn decode_time_cursor(cursor: &str) -> Option<String> {
    let text = decode_cursor(cursor)?;
    let (time, id) = text.split_once('#')?;
    (time.len() == 16 && time.bytes().all(|b| b.is_ascii_digit()) && !id.is_empty()).then_some(text)
}

/// `V#000001`: published version `version` of a workflow.
pub fn version_sk(version: u32) -> String {
    format!("{VERSION_PREFIX}{version:06}")
}

/// Page size of a listing that asks for 0.
pub const DEFAULT_PAGE_SIZE: usize = 50;
/// Largest page a listing returns.
pub const MAX_PAGE_SIZE: usize = 1000;

/// The page size of a listing asked for `limit` items: 0 is [`DEFAULT_PAGE_SIZE`], and no page
/// is over [`MAX_PAGE_SIZE`].
pub fn page_size(limit: usize) -> usize {
    match limit {
        0 => DEFAULT_PAGE_SIZE,
        n => n.min(MAX_PAGE_SIZE),
    }
}

/// One page of a listing, in listing order, and the cursor of the next page (none on the last).
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

// By hand: the derive would ask `T: Default`, and an empty page needs no item.
impl<T> Default for Page<T> {
    fn default() -> Self {
        Self {
            items: Vec::new(),
            next_cursor: None,
        }
    }
}

/// A page out of `rows` (key text, value), read in listing order with one more than `limit`:
/// the first `limit` values and, when a row was left over, the cursor ([`encode_cursor`]) of the
/// last value's key, where the next page starts after.
pub fn cut_page<T>(
    rows: impl IntoIterator<Item = (String, T)>, limit: usize,
) -> (Vec<T>, Option<String>) {
    let mut rows = rows.into_iter();
    let mut items = Vec::new();
    let mut last = None;
    for (key, value) in rows.by_ref().take(limit) {
        items.push(value);
        last = Some(key);
    }
    let more = rows.next().is_some();
    (items, last.filter(|_| more).map(|k| encode_cursor(&k)))
}

/// The opaque cursor of a listing page: the text of the last key read, hex-encoded (URL-safe,
/// and it tells callers nothing of the layout). Each store decides what the text holds.
pub fn encode_cursor(last_key: &str) -> String {
    hex::encode(last_key)
}

/// The text of a cursor made by [`encode_cursor`]; None when it is not one.
pub fn decode_cursor(cursor: &str) -> Option<String> {
    hex::decode(cursor)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_are_cut_after_the_limit_with_a_cursor_only_when_more_is_left() {
        let rows = |n: usize| (0..n).map(|i| (format!("k{i}"), i));
        assert_eq!(
            cut_page(rows(3), 2),
            (vec![0, 1], Some(encode_cursor("k1")))
        );
        assert_eq!(cut_page(rows(2), 2), (vec![0, 1], None));
        assert_eq!(cut_page(rows(0), 2), (vec![], None));
        assert_eq!(page_size(0), DEFAULT_PAGE_SIZE);
        assert_eq!(page_size(7), 7);
        assert_eq!(page_size(usize::MAX), MAX_PAGE_SIZE);
    }

    #[test]
    fn keys_sort_and_parse() {
        assert_eq!(step_sk("each[3]/price"), "STEP#each[3]/price");
        assert_eq!(loop_sk("each"), "LOOP#each");
        assert_eq!(rejections_pk("w"), "REJECT#w");
        assert_eq!(rejection_sk(12, "e#1"), "0000000000000012#e#1");
        assert_eq!(rejection_sk(-5, "e"), "0000000000000000#e");
        let cursor = encode_cursor(&rejection_sk(7, "e"));
        assert_eq!(decode_time_cursor(&cursor), Some(rejection_sk(7, "e")));
        assert_eq!(decode_time_cursor(&encode_cursor("12#e")), None);
        assert_eq!(decode_time_cursor("zz"), None);
        assert_eq!(loop_items_sk("each", 2), "LOOP#each#items#0000000002");
        assert!(loop_items_sk("each", 9) < loop_items_sk("each", 10));
        assert_eq!(loop_item_page(0), (0, 0));
        assert_eq!(loop_item_page(LOOP_ITEMS_PER_PAGE + 3), (1, 3));
        assert_eq!(iter_sk("each", 3), "ITER#each[0000000003]");
        assert_eq!(iter_index(&iter_sk("a[1]/b", u32::MAX)), Some(u32::MAX));
        assert!(iter_sk("each", 9) < iter_sk("each", 10));
        assert!(iter_sk("each", 1).starts_with(&iter_prefix("each")));
        assert_eq!(version_sk(1), "V#000001");
        assert_eq!(version_sk(12), "V#000012");
        assert!(version_sk(9) < version_sk(10));
        assert!(step_sk("x").starts_with(STEP_PREFIX));
    }

    #[test]
    fn cursors_round_trip_and_refuse_what_is_not_one() {
        let text = "0001700000000000#01ARZ3NDEKTSV4RRFFQ69G5FAV";
        assert_eq!(decode_cursor(&encode_cursor(text)).as_deref(), Some(text));
        for bad in ["zz", "abc", "ff", "%%"] {
            assert_eq!(decode_cursor(bad), None, "{bad}");
        }
    }

    #[test]
    fn iterations_of_a_loop_exclude_nested_loops() {
        assert_eq!(iteration_of("each", &iter_sk("each", 7)), Some(7));
        assert_eq!(
            iteration_of("each", &iter_sk("each", u32::MAX)),
            Some(u32::MAX)
        );
        // A nested loop's iteration shares the prefix but is not one of `each`'s.
        let nested = iter_sk("each[0]/inner", 2);
        assert!(nested.starts_with(&iter_prefix("each")));
        assert_eq!(iteration_of("each", &nested), None);
        assert_eq!(iteration_of("each[0]/inner", &nested), Some(2));
        // Another loop whose id starts the same way.
        assert_eq!(iteration_of("each", &iter_sk("each_x", 1)), None);
        for bad in [
            "ITER#each[3]",
            "ITER#each[00000000x3]",
            "STEP#each",
            "ITER#each[",
        ] {
            assert_eq!(iteration_of("each", bad), None, "{bad}");
        }
    }
}
