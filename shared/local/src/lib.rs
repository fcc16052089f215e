//! wf-local: the local adapters of the wf-core ports, all on one SQLite file.
//!
//! * [`SqliteStore`]: `DefinitionStore`, `ExecutionStore` and `RecordStore` (tables mirroring
//!   the DynamoDB items; WAL; one writer thread with group commit; read-only reader pool).
//! * [`SqliteQueue`]: the durable `TaskQueue` (visibility timeouts, delays, stale receipts),
//!   sharing the store's writer: work survives a kill and resumes after a restart.
//! * [`LocalEventBus`]: the `EventBus` of `wf dev` (durable outbox + in-process broadcast).

mod bus;
mod db;
mod items;
mod listing;
mod queue;
mod schema;
mod store;

pub use bus::{LocalEventBus, MAX_EVENT_BYTES};
pub use items::MAX_ITEM_BYTES;
pub use queue::{MAX_MESSAGE_BYTES, QueueConfig, SqliteQueue};
pub use store::SqliteStore;
