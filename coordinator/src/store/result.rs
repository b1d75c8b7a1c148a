//! The result of a user query and its renderings: aligned text table, CSV, JSON.

use std::fmt;

use serde_json::Value;

use super::stream::{CsvSink, JsonSink, RowSink};

/// Column names and rows of a read-only query; values are JSON scalars (NULL, integers,
/// floats, text, booleans), or JSON arrays and objects where the database returned them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Value>>,
}

impl QueryResult {
    /// Typed rows (of the read model) as a result with these column names, `cells` giving
    /// each row's values in column order: the renderings below then show them.
    pub fn from_rows<T>(columns: &[&str], rows: &[T], cells: impl Fn(&T) -> Vec<Value>) -> Self {
        QueryResult {
            columns: columns.iter().map(|c| c.to_string()).collect(),
            rows: rows.iter().map(cells).collect(),
        }
    }

    /// An aligned text table in the manner of `psql`, numbers right-aligned, NULL shown as
    /// `NULL`, with a row count at the end.
    pub fn to_table(&self) -> String {
        let cells: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|row| row.iter().map(|v| one_line(&text(v, "NULL"))).collect())
            .collect();
        let mut widths: Vec<usize> = self.columns.iter().map(|c| width(c)).collect();
        for row in &cells {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(width(cell));
            }
        }
        let numeric: Vec<bool> = (0..self.columns.len())
            .map(|c| {
                let mut values = self
                    .rows
                    .iter()
                    .filter_map(|r| r.get(c))
                    .filter(|v| !v.is_null());
                let first = values.next();
                first.is_some_and(Value::is_number) && values.all(Value::is_number)
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self
            .columns
            .iter()
            .zip(&widths)
            .map(|(c, &w)| pad(&one_line(c), w, false))
            .collect();
        out.push_str(&format!(" {} \n", header.join(" | ")));
        let rule: Vec<String> = widths.iter().map(|&w| "-".repeat(w + 2)).collect();
        out.push_str(&rule.join("+"));
        out.push('\n');
        for row in &cells {
            let line: Vec<String> = row
                .iter()
                .enumerate()
                .map(|(c, cell)| pad(cell, widths[c], numeric[c]))
                .collect();
            out.push_str(&format!(" {} \n", line.join(" | ")));
        }
        let n = self.rows.len();
        out.push_str(&format!("({n} row{})\n", if n == 1 { "" } else { "s" }));
        out
    }

    /// CSV with a header line: RFC 4180 quoting (fields holding a comma, quote, CR or LF are
    /// quoted, quotes doubled) and CRLF line ends; NULL is an empty field.
    pub fn to_csv(&self) -> String {
        let mut sink = CsvSink(Vec::new());
        self.write_to(&mut sink);
        String::from_utf8(sink.0).expect("CSV of JSON values is UTF-8")
    }

    /// A JSON array with one object per row, keys in column order.
    pub fn to_json(&self) -> String {
        let mut sink = JsonSink::new(Vec::new());
        self.write_to(&mut sink);
        let bytes = sink.close().expect("writing to memory cannot fail");
        String::from_utf8(bytes).expect("JSON is UTF-8")
    }

    /// Hands the columns and rows to an in-memory sink.
    fn write_to(&self, sink: &mut dyn RowSink) {
        const IN_MEMORY: &str = "writing to memory cannot fail";
        sink.columns(&self.columns).expect(IN_MEMORY);
        for row in &self.rows {
            sink.row(row.clone()).expect(IN_MEMORY);
        }
    }
}

impl fmt::Display for QueryResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_table())
    }
}

/// A value as text; `null` is what NULL becomes.
pub(super) fn text(v: &Value, null: &str) -> String {
    match v {
        Value::Null => null.to_string(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn one_line(s: &str) -> String {
    s.replace('\r', "\\r")
        .replace('\n', "\\n")
        .replace('\t', "\\t")
}

fn width(s: &str) -> usize {
    s.chars().count()
}

fn pad(s: &str, w: usize, right: bool) -> String {
    let fill = " ".repeat(w.saturating_sub(width(s)));
    if right {
        format!("{fill}{s}")
    } else {
        format!("{s}{fill}")
    }
}

pub(super) fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\r', '\n']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn sample() -> QueryResult {
        QueryResult {
            columns: vec!["layer".into(), "label".into(), "ok".into()],
            rows: vec![
                vec![json!(3), json!("say, \"hi\"\nthere"), json!(true)],
                vec![json!(12.5), Value::Null, json!(false)],
            ],
        }
    }

    #[test]
    fn table_aligns_and_counts() {
        let t = sample().to_table();
        let expected = concat!(
            " layer | label            | ok    \n",
            "-------+------------------+-------\n",
            "     3 | say, \"hi\"\\nthere | true  \n",
            "  12.5 | NULL             | false \n",
            "(2 rows)\n",
        );
        assert_eq!(t, expected);
    }

    #[test]
    fn csv_quotes_as_rfc_4180() {
        assert_eq!(
            sample().to_csv(),
            "layer,label,ok\r\n3,\"say, \"\"hi\"\"\nthere\",true\r\n12.5,,false\r\n"
        );
    }

    #[test]
    fn json_keeps_column_order_and_types() {
        let j = sample().to_json();
        assert_eq!(
            j,
            r#"[{"layer":3,"label":"say, \"hi\"\nthere","ok":true},{"layer":12.5,"label":null,"ok":false}]"#
        );
        let parsed: Value = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed[1]["layer"], json!(12.5));
    }

    #[test]
    fn empty_result_renders() {
        let r = QueryResult {
            columns: vec!["a".into()],
            rows: vec![],
        };
        assert_eq!(r.to_table(), " a \n---\n(0 rows)\n");
        assert_eq!(r.to_csv(), "a\r\n");
        assert_eq!(r.to_json(), "[]");
    }
}
