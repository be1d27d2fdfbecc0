//! Just enough of a SQL tokenizer to colour the editor: keywords, strings, numbers, comments.

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Token {
    Keyword,
    String,
    Number,
    Comment,
    Plain,
}

impl Token {
    pub fn class(self) -> &'static str {
        match self {
            Token::Keyword => "tok-kw",
            Token::String => "tok-str",
            Token::Number => "tok-num",
            Token::Comment => "tok-com",
            Token::Plain => "",
        }
    }
}

/// The words coloured as keywords, and completed as such.
pub(crate) const KEYWORDS: &[&str] = &[
    "select",
    "from",
    "where",
    "group",
    "by",
    "order",
    "limit",
    "having",
    "as",
    "and",
    "or",
    "not",
    "in",
    "is",
    "null",
    "like",
    "ilike",
    "between",
    "case",
    "when",
    "then",
    "else",
    "end",
    "join",
    "left",
    "right",
    "inner",
    "outer",
    "full",
    "cross",
    "on",
    "using",
    "with",
    "union",
    "all",
    "distinct",
    "asc",
    "desc",
    "over",
    "partition",
    "explain",
    "describe",
    "show",
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "true",
    "false",
    "interval",
    "cast",
    "offset",
    "within",
    "filter",
    "rows",
    "range",
    "analyze",
    "tables",
    "columns",
];

/// Splits `sql` into coloured pieces that, joined, give back `sql` exactly.
pub fn tokenize(sql: &str) -> Vec<(Token, &str)> {
    let mut pieces = Vec::new();
    let mut rest = sql;
    while let Some(first) = rest.chars().next() {
        let (token, len) = if rest.starts_with("--") {
            (Token::Comment, rest.find('\n').unwrap_or(rest.len()))
        } else if first == '\'' {
            // To the closing quote ('' is an escaped quote), or to the end.
            let mut end = rest.len();
            let mut i = 1;
            while let Some(offset) = rest[i..].find('\'') {
                let at = i + offset;
                if rest[at + 1..].starts_with('\'') {
                    i = at + 2;
                } else {
                    end = at + 1;
                    break;
                }
            }
            (Token::String, end)
        } else if first.is_ascii_digit() {
            let len = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '_'))
                .unwrap_or(rest.len());
            (Token::Number, len)
        } else if first.is_alphabetic() || first == '_' {
            let len = rest
                .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                .unwrap_or(rest.len());
            let word = &rest[..len];
            let keyword = KEYWORDS.iter().any(|k| k.eq_ignore_ascii_case(word));
            (
                if keyword {
                    Token::Keyword
                } else {
                    Token::Plain
                },
                len,
            )
        } else {
            (Token::Plain, first.len_utf8())
        };
        pieces.push((token, &rest[..len]));
        rest = &rest[len..];
    }
    pieces
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colours_without_losing_a_character() {
        let sql = "SELECT count(*) AS n -- how many\nFROM logs WHERE message = 'it''s 5xx' AND status >= 500 ✓";
        let pieces = tokenize(sql);
        assert_eq!(pieces.iter().map(|(_, s)| *s).collect::<String>(), sql);
        assert!(pieces.contains(&(Token::Keyword, "SELECT")));
        assert!(pieces.contains(&(Token::Comment, "-- how many")));
        assert!(pieces.contains(&(Token::String, "'it''s 5xx'")));
        assert!(pieces.contains(&(Token::Number, "500")));
        assert!(pieces.contains(&(Token::Plain, "logs")));
        assert_eq!(tokenize("'open").as_slice(), [(Token::String, "'open")]);
    }
}
