//! Running one read-only statement of the read model with bound parameters on either
//! backend. The statement text is the same on both backends (`$1`, `$2`, ... parameters);
//! it runs on the executor users' queries run on (`user_query.rs`: the read-only connection
//! or transaction, the backends' decoders, not kept prepared), every row collected.

/// A bound parameter of a named query.
pub(crate) use crate::store::queue_sql::Arg as Param;
use crate::store::{Collect, QueryOptions, QueryResult, Store, StoreError};

impl Store {
    /// Runs one read-only statement of the read model on this store's backend.
    pub(crate) async fn fetch(
        &self,
        sql: &str,
        params: &[Param<'_>],
    ) -> Result<QueryResult, StoreError> {
        let mut rows = Collect::default();
        self.stream_statement(sql, params, &QueryOptions::default(), &mut rows)
            .await?;
        Ok(rows.0)
    }
}
