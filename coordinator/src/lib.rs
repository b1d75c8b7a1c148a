//! patchsweep's coordinator side: the sweep spec, and the SQL store (SQLite or PostgreSQL).
//!
//! # Layout
//! - [`spec`]: the sweep spec (TOML), validated completely before any compute.
//! - [`store`]: the only place with SQL; migrations in `migrations/{sqlite,postgres}`.

pub mod spec;
pub mod store;
