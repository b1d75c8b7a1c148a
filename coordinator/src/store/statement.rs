//! The first gate of read-only queries: exactly one statement, and one that reads.
//!
//! This is a convenience that gives clear messages early; the guarantee comes from the
//! database itself (a read-only SQLite connection with `query_only`, a PostgreSQL
//! `READ ONLY` transaction that is always rolled back).

use super::StoreError;

/// The SQL dialect whose quoting rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Dialect {
    Sqlite,
    Postgres,
}

/// Returns the single statement in `sql` (without its trailing `;`), or refuses.
pub(crate) fn single_read_statement(sql: &str, dialect: Dialect) -> Result<&str, StoreError> {
    let end = first_statement_end(sql, dialect);
    let first = &sql[..end];
    if end < sql.len() && has_code(&sql[end + 1..], dialect) {
        return Err(StoreError::ReadOnly {
            reason: "found more than one statement; run one statement at a time".to_string(),
        });
    }
    let keyword = first_keyword(first, dialect);
    if keyword.is_empty() {
        return Err(StoreError::Query {
            message: "the query is empty".to_string(),
        });
    }
    let allowed: &[&str] = match dialect {
        Dialect::Sqlite => &["SELECT", "WITH", "VALUES", "EXPLAIN", "PRAGMA"],
        Dialect::Postgres => &["SELECT", "WITH", "VALUES", "EXPLAIN", "TABLE", "SHOW"],
    };
    if !allowed.contains(&keyword.as_str()) && !STATEMENT_KEYWORDS.contains(&keyword.as_str()) {
        let typo = allowed
            .iter()
            .find(|k| edit_distance(k, &keyword) <= 2)
            .map(|k| format!(" (did you mean {k}?)"))
            .unwrap_or_default();
        return Err(StoreError::Query {
            message: format!(
                "syntax error: `{keyword}` does not start an SQL statement{typo}; queries start \
                 with {}",
                allowed.join(", ")
            ),
        });
    }
    if !allowed.contains(&keyword.as_str()) {
        return Err(StoreError::ReadOnly {
            reason: format!("{keyword} is not a query; use {}", allowed.join(", ")),
        });
    }
    Ok(first.trim_end())
}

/// Keywords that start a statement that is SQL but not a query (on either backend): these
/// are refused as writes; any other first word is a syntax error.
const STATEMENT_KEYWORDS: &[&str] = &[
    "INSERT",
    "UPDATE",
    "DELETE",
    "REPLACE",
    "UPSERT",
    "MERGE",
    "CREATE",
    "DROP",
    "ALTER",
    "TRUNCATE",
    "ATTACH",
    "DETACH",
    "VACUUM",
    "REINDEX",
    "ANALYZE",
    "BEGIN",
    "COMMIT",
    "END",
    "ROLLBACK",
    "SAVEPOINT",
    "RELEASE",
    "START",
    "SET",
    "RESET",
    "GRANT",
    "REVOKE",
    "COPY",
    "CALL",
    "DO",
    "LOCK",
    "LISTEN",
    "NOTIFY",
    "UNLISTEN",
    "PREPARE",
    "EXECUTE",
    "DEALLOCATE",
    "DECLARE",
    "FETCH",
    "CLOSE",
    "MOVE",
    "DISCARD",
    "LOAD",
    "CLUSTER",
    "CHECKPOINT",
    "COMMENT",
    "SECURITY",
    "REFRESH",
    "IMPORT",
    "ABORT",
    "PRAGMA",
    "TABLE",
    "SHOW",
];

/// Levenshtein distance of two short ASCII words.
fn edit_distance(a: &str, b: &str) -> usize {
    let b = b.as_bytes();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.bytes().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

/// Byte index of the first top-level `;`, or `sql.len()`.
fn first_statement_end(sql: &str, dialect: Dialect) -> usize {
    let b = sql.as_bytes();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b';' => return i,
            _ => i = skip_token(b, i, dialect),
        }
    }
    b.len()
}

/// Whether `rest` holds anything but whitespace, comments and semicolons.
fn has_code(rest: &str, dialect: Dialect) -> bool {
    let b = rest.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i].is_ascii_whitespace() || b[i] == b';' {
            i += 1;
        } else if starts_comment(b, i) {
            i = skip_token(b, i, dialect);
        } else {
            return true;
        }
    }
    false
}

/// The first keyword, upper-cased, skipping whitespace, comments and opening parentheses.
fn first_keyword(stmt: &str, dialect: Dialect) -> String {
    let b = stmt.as_bytes();
    let mut i = 0;
    while i < b.len() && (b[i].is_ascii_whitespace() || b[i] == b'(' || starts_comment(b, i)) {
        i = if starts_comment(b, i) {
            skip_token(b, i, dialect)
        } else {
            i + 1
        };
    }
    let start = i;
    while i < b.len() && (b[i].is_ascii_alphanumeric() || b[i] == b'_') {
        i += 1;
    }
    stmt[start..i].to_ascii_uppercase()
}

fn starts_comment(b: &[u8], i: usize) -> bool {
    b[i..].starts_with(b"--") || b[i..].starts_with(b"/*")
}

fn is_ident(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80
}

/// Index just past the token that starts at `i` (a quoted string or identifier, a comment,
/// or one plain byte). Unterminated tokens run to the end.
fn skip_token(b: &[u8], i: usize, dialect: Dialect) -> usize {
    let prev_ident = i > 0 && (is_ident(b[i - 1]) || b[i - 1] == b'$');
    match b[i] {
        b'\'' => {
            // PostgreSQL E'...' strings take backslash escapes.
            let escapes = dialect == Dialect::Postgres
                && i > 0
                && (b[i - 1] == b'e' || b[i - 1] == b'E')
                && !(i > 1 && is_ident(b[i - 2]));
            skip_quoted(b, i, b'\'', escapes)
        }
        b'"' => skip_quoted(b, i, b'"', false),
        b'`' if dialect == Dialect::Sqlite => skip_quoted(b, i, b'`', false),
        b'[' if dialect == Dialect::Sqlite => match b[i + 1..].iter().position(|&c| c == b']') {
            Some(p) => i + 1 + p + 1,
            None => b.len(),
        },
        b'-' if b[i..].starts_with(b"--") => match b[i..].iter().position(|&c| c == b'\n') {
            Some(p) => i + p + 1,
            None => b.len(),
        },
        b'/' if b[i..].starts_with(b"/*") => skip_block_comment(b, i, dialect),
        b'$' if dialect == Dialect::Postgres && !prev_ident => skip_dollar_quoted(b, i),
        _ => i + 1,
    }
}

fn skip_quoted(b: &[u8], i: usize, quote: u8, backslash_escapes: bool) -> usize {
    let mut j = i + 1;
    while j < b.len() {
        if backslash_escapes && b[j] == b'\\' {
            j += 2;
        } else if b[j] == quote {
            if b.get(j + 1) == Some(&quote) {
                j += 2;
            } else {
                return j + 1;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

fn skip_block_comment(b: &[u8], i: usize, dialect: Dialect) -> usize {
    // PostgreSQL nests block comments; SQLite does not.
    let mut depth = 0usize;
    let mut j = i;
    while j < b.len() {
        if b[j..].starts_with(b"/*") && (depth == 0 || dialect == Dialect::Postgres) {
            depth += 1;
            j += 2;
        } else if b[j..].starts_with(b"*/") {
            depth -= 1;
            j += 2;
            if depth == 0 {
                return j;
            }
        } else {
            j += 1;
        }
    }
    b.len()
}

/// `$tag$ ... $tag$`; a `$` that opens no such quote (a `$1` parameter) is one byte.
fn skip_dollar_quoted(b: &[u8], i: usize) -> usize {
    let mut j = i + 1;
    if j < b.len() && !b[j].is_ascii_digit() {
        while j < b.len() && is_ident(b[j]) {
            j += 1;
        }
    }
    if b.get(j) != Some(&b'$') {
        return i + 1;
    }
    let tag = &b[i..=j];
    match b[j + 1..].windows(tag.len()).position(|w| w == tag) {
        Some(p) => j + 1 + p + tag.len(),
        None => b.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::Dialect::{Postgres, Sqlite};
    use super::*;

    fn ok(sql: &str, d: Dialect) -> String {
        single_read_statement(sql, d)
            .unwrap_or_else(|e| panic!("{sql:?} refused: {e}"))
            .to_string()
    }

    fn refused(sql: &str, d: Dialect) -> String {
        match single_read_statement(sql, d) {
            Err(e @ StoreError::ReadOnly { .. }) => e.to_string(),
            other => panic!("{sql:?} not refused as read-only: {other:?}"),
        }
    }

    #[test]
    fn one_query_passes_with_its_semicolon_removed() {
        for d in [Sqlite, Postgres] {
            assert_eq!(ok("SELECT 1;", d), "SELECT 1");
            assert_eq!(ok("  select 1 ; ; -- done\n", d), "  select 1");
            assert_eq!(
                ok("/* c */ (SELECT 1) UNION SELECT 2", d),
                "/* c */ (SELECT 1) UNION SELECT 2"
            );
            assert_eq!(
                ok("WITH x AS (SELECT 1) SELECT * FROM x", d),
                "WITH x AS (SELECT 1) SELECT * FROM x"
            );
            assert_eq!(
                ok("SELECT 'a;b', \"c;d\" -- ;\n", d),
                "SELECT 'a;b', \"c;d\" -- ;"
            );
            assert_eq!(ok("SELECT 'it''s; fine'", d), "SELECT 'it''s; fine'");
        }
        assert_eq!(
            ok("SELECT $$;$$, $t$ ; $t$", Postgres),
            "SELECT $$;$$, $t$ ; $t$"
        );
        assert_eq!(ok(r"SELECT E'\';'", Postgres), r"SELECT E'\';'");
        assert_eq!(
            ok("SELECT `a;b`, [c;d] FROM t", Sqlite),
            "SELECT `a;b`, [c;d] FROM t"
        );
        assert_eq!(
            ok("PRAGMA table_info(effects)", Sqlite),
            "PRAGMA table_info(effects)"
        );
    }

    #[test]
    fn a_misspelt_keyword_is_a_syntax_error_not_a_refused_write() {
        for d in [Sqlite, Postgres] {
            let msg = single_read_statement("SELEC * FROM effects_v", d)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("syntax error") && msg.contains("`SELEC`"),
                "{msg}"
            );
            assert!(msg.contains("did you mean SELECT?"), "{msg}");
            assert!(!msg.contains("read-only"), "{msg}");
            let msg = single_read_statement("hello world", d)
                .unwrap_err()
                .to_string();
            assert!(
                msg.contains("syntax error") && !msg.contains("did you mean"),
                "{msg}"
            );
        }
        assert_eq!(edit_distance("SELEC", "SELECT"), 1);
        assert_eq!(edit_distance("WTIH", "WITH"), 2);
    }

    #[test]
    fn writes_and_second_statements_are_refused() {
        for d in [Sqlite, Postgres] {
            for sql in [
                "INSERT INTO t VALUES (1)",
                "update t set a = 1",
                "DELETE FROM t",
                "DROP TABLE t",
                "CREATE TABLE t (a INT)",
                "  /* x */ ALTER TABLE t ADD b INT",
                "SELECT 1; DELETE FROM t",
                "SELECT 1;DELETE FROM t;",
                "SELECT ';'; DROP TABLE t",
                "SELECT 1 -- ;\n; DELETE FROM t",
            ] {
                let msg = refused(sql, d);
                assert!(msg.contains("queries are read-only"), "{msg}");
            }
        }
        // Not a dollar quote in SQLite, so the second statement is seen.
        refused("SELECT $a$; DELETE FROM t; --$a$", Sqlite);
        // A backslash does not escape in standard strings.
        refused(r"SELECT '\'; DELETE FROM t", Postgres);
        // SQLite block comments do not nest.
        refused("SELECT 1 /* /* */ ; DELETE FROM t", Sqlite);
        // Parameter-like `$1` is no quote.
        refused("SELECT $1; DELETE FROM t", Postgres);
    }

    #[test]
    fn empty_query_is_an_error() {
        assert!(matches!(
            single_read_statement(" ; -- nothing", Sqlite),
            Err(StoreError::Query { .. })
        ));
    }
}
