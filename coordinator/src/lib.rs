//! patchsweep's coordinator side: the sweep spec, and the SQL store (SQLite or PostgreSQL).
//!
//! # Layout
//! - [`store`]: the only place with SQL; migrations in `migrations/{sqlite,postgres}`.

pub mod store;
