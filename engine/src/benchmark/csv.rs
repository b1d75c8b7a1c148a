//! A small RFC 4180 CSV reader (quoted fields, `""` escapes, line breaks inside quotes, CRLF),
//! enough for the published benchmark files; every record knows the line it starts on.

use super::BenchmarkError;

/// One record: its fields and the 1-based line it starts on.
pub(crate) struct Record {
    pub line: usize,
    pub fields: Vec<String>,
}

/// Splits `text` into records; blank lines between records are skipped. `path` names the
/// file in errors.
pub(crate) fn records(text: &str, path: &str) -> Result<Vec<Record>, BenchmarkError> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    let mut line = 1;
    while chars.peek().is_some() {
        let start = line;
        let mut fields = Vec::new();
        let mut field = String::new();
        let mut quoted = false;
        let mut at_field_start = true;
        loop {
            let Some(c) = chars.next() else {
                if quoted {
                    return Err(BenchmarkError::Parse {
                        path: path.into(),
                        line: start,
                        message: "a quoted field is never closed".into(),
                    });
                }
                break;
            };
            if c == '\n' {
                line += 1;
            }
            if quoted {
                match c {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        field.push('"');
                    }
                    '"' => quoted = false,
                    _ => field.push(c),
                }
                continue;
            }
            match c {
                '"' if at_field_start => {
                    quoted = true;
                    at_field_start = false;
                }
                '"' => {
                    return Err(BenchmarkError::Parse {
                        path: path.into(),
                        line,
                        message: "a quote inside an unquoted field".into(),
                    })
                }
                ',' => {
                    fields.push(std::mem::take(&mut field));
                    at_field_start = true;
                }
                '\r' if chars.peek() == Some(&'\n') => {}
                '\n' => break,
                _ => {
                    field.push(c);
                    at_field_start = false;
                }
            }
        }
        fields.push(field);
        if !(fields.len() == 1 && fields[0].is_empty()) {
            out.push(Record {
                line: start,
                fields,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_escapes_and_line_breaks() {
        let text = "a,b\n1,\"x, \"\"y\"\"\nz\"\r\n\n2,plain\n";
        let recs = records(text, "t.csv").unwrap();
        assert_eq!(recs.len(), 3);
        assert_eq!(recs[1].fields, vec!["1", "x, \"y\"\nz"]);
        assert_eq!(recs[1].line, 2);
        assert_eq!(recs[2].line, 5);
        assert_eq!(recs[2].fields, vec!["2", "plain"]);
    }

    #[test]
    fn an_open_quote_names_its_line() {
        let err = records("a,b\n1,\"never\n2,3\n", "t.csv").err().unwrap();
        assert_eq!(err.to_string(), "t.csv:2: a quoted field is never closed");
        let err = records("a,b\n1,x\"y\n", "t.csv").err().unwrap();
        assert_eq!(err.to_string(), "t.csv:2: a quote inside an unquoted field");
    }
}
