//! The SQL store (filled in by the store work).
