//! The order-lifecycle read on SQLite: an inline read on the calling thread (`reads.rs`), as
//! the rest of the issuance path's point reads.

use super::{reads, SqliteStorage};
use crate::sa::lifecycle::{OrderLifecycle, OrderLifecycleRead};
use crate::sa::SaError;
use async_trait::async_trait;

#[async_trait]
impl OrderLifecycleRead for SqliteStorage {
    async fn order_lifecycle(&self, order_id: &str) -> Result<Option<OrderLifecycle>, SaError> {
        self.reads()
            .read(|c| reads::get_order_lifecycle(c, order_id))
    }
}
