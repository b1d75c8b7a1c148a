//! A whole view or table of the results, for `patchsweep export`: its columns are the
//! view's, so the rows stay JSON values ([`QueryResult`]); [`super::values`] reads them.

use super::exec::Param;
use crate::store::{QueryResult, Store, StoreError};

/// Whether `name` can name a view or table as it is: letters, digits and `_`, not
/// starting with a digit.
pub fn is_plain_name(name: &str) -> bool {
    name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && name.chars().next().is_some_and(|c| !c.is_ascii_digit())
}

impl Store {
    /// Every row of the view or table `view`, or only those of one sweep (the view must
    /// have a `sweep_id` column), in the database's order.
    pub async fn export_view(
        &self,
        view: &str,
        sweep_id: Option<i64>,
    ) -> Result<QueryResult, StoreError> {
        if !is_plain_name(view) {
            return Err(StoreError::InvalidInput {
                step: "export",
                message: format!("`{view}` is not the name of a view or table"),
            });
        }
        match sweep_id {
            Some(id) => {
                self.fetch(
                    &format!("SELECT * FROM {view} WHERE sweep_id = $1"),
                    &[Param::Int(id)],
                )
                .await
            }
            None => self.fetch(&format!("SELECT * FROM {view}"), &[]).await,
        }
    }
}
