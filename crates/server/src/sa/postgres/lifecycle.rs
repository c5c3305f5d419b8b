//! The order-lifecycle read on PostgreSQL: one pooled query.

use super::PgStorage;
use crate::sa::lifecycle::{OrderLifecycle, OrderLifecycleRead, ORDER_LIFECYCLE_BY_ORDER};
use crate::sa::{rows, SaError};
use async_trait::async_trait;

#[async_trait]
impl OrderLifecycleRead for PgStorage {
    async fn order_lifecycle(&self, order_id: &str) -> Result<Option<OrderLifecycle>, SaError> {
        let row = sqlx::query(ORDER_LIFECYCLE_BY_ORDER)
            .bind(order_id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::order_lifecycle).transpose()
    }
}
