//! Autocomplete for the SQL editor, on the schema the workbench already has: the table's
//! names, its columns, the functions a query may call (DataFusion's and lakepulse's, as the
//! server lists them) and SQL's keywords. No editor library: the page stays light.

use crate::app::sql_highlight::{tokenize, Token, KEYWORDS};
use crate::model::ColumnInfo;

/// What a suggestion names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    Column,
    Table,
    Function,
    Keyword,
}

impl Kind {
    /// How the list labels it.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Column => "column",
            Kind::Table => "table",
            Kind::Function => "function",
            Kind::Keyword => "keyword",
        }
    }
}

/// A word the editor can complete to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Word {
    pub text: String,
    pub kind: Kind,
}

/// Everything the editor completes to: columns, the table's names, functions, keywords.
pub fn vocabulary(tables: &[String], columns: &[ColumnInfo], functions: &[String]) -> Vec<Word> {
    let word = |text: &str, kind| Word {
        text: text.to_owned(),
        kind,
    };
    columns
        .iter()
        .map(|c| word(&c.name, Kind::Column))
        .chain(tables.iter().map(|t| word(t, Kind::Table)))
        .chain(functions.iter().map(|f| word(f, Kind::Function)))
        .chain(
            KEYWORDS
                .iter()
                .map(|k| word(&k.to_uppercase(), Kind::Keyword)),
        )
        .collect()
}

/// The word being typed at byte `caret`: where it starts and what it is so far. None in a
/// string or a comment, and where no word ends at the caret.
pub fn word_at(sql: &str, caret: usize) -> Option<(usize, &str)> {
    let before = sql.get(..caret)?;
    let continues = sql[caret..]
        .chars()
        .next()
        .is_some_and(|c| c.is_alphanumeric() || c == '_');
    if continues {
        return None;
    }
    let (token, piece) = *tokenize(before).last()?;
    let is_word = piece
        .chars()
        .next()
        .is_some_and(|c| c.is_alphabetic() || c == '_');
    match token {
        Token::Keyword | Token::Plain if is_word => Some((caret - piece.len(), piece)),
        _ => None,
    }
}

/// Up to `limit` words that start with `prefix` (in any case), by kind (columns, tables,
/// functions, keywords) then shortest first; a word already typed in full is none.
pub fn suggest<'a>(vocabulary: &'a [Word], prefix: &str, limit: usize) -> Vec<&'a Word> {
    let prefix = prefix.to_lowercase();
    let mut found: Vec<&Word> = vocabulary
        .iter()
        .filter(|w| {
            let text = w.text.to_lowercase();
            text.starts_with(&prefix) && text != prefix
        })
        .collect();
    found.sort_by(|a, b| (a.kind, a.text.len(), &a.text).cmp(&(b.kind, b.text.len(), &b.text)));
    found.dedup_by(|a, b| a.text.eq_ignore_ascii_case(&b.text));
    found.truncate(limit);
    found
}

/// The byte offset of a UTF-16 offset (as a browser counts a caret) in `text`.
pub fn byte_offset(text: &str, utf16: usize) -> usize {
    let mut units = 0;
    for (at, c) in text.char_indices() {
        if units >= utf16 {
            return at;
        }
        units += c.len_utf16();
    }
    text.len()
}

/// The UTF-16 offset (as a browser counts a caret) of byte `at` in `text`.
pub fn utf16_offset(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].encode_utf16().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words() -> Vec<Word> {
        let columns = ["response_time_ms", "referrer", "status"].map(|name| ColumnInfo {
            name: name.into(),
            data_type: "Utf8".into(),
            nullable: true,
        });
        vocabulary(
            &["logs".into()],
            &columns,
            &["regexp_like".into(), "round".into(), "lower".into()],
        )
    }

    fn texts(words: Vec<&Word>) -> Vec<&str> {
        words.into_iter().map(|w| w.text.as_str()).collect()
    }

    #[test]
    fn the_word_at_the_caret_outside_strings_and_comments() {
        assert_eq!(word_at("SELECT res", 10), Some((7, "res")));
        assert_eq!(word_at("SELECT res FROM", 10), Some((7, "res")));
        assert_eq!(word_at("SELECT resp", 9), None, "inside a word");
        assert_eq!(word_at("SELECT 'res", 11), None);
        assert_eq!(word_at("-- res", 6), None);
        assert_eq!(word_at("SELECT 12", 9), None);
        assert_eq!(word_at("SELECT ", 7), None);
        assert_eq!(word_at("SELECT é", 9), Some((7, "é")));
    }

    #[test]
    fn columns_first_then_tables_functions_and_keywords_in_any_case() {
        let words = words();
        assert_eq!(
            texts(suggest(&words, "re", 10)),
            ["referrer", "response_time_ms", "regexp_like"]
        );
        assert_eq!(texts(suggest(&words, "LO", 10)), ["logs", "lower"]);
        assert_eq!(texts(suggest(&words, "sel", 10)), ["SELECT"]);
        assert_eq!(texts(suggest(&words, "status", 10)), Vec::<&str>::new());
        assert_eq!(suggest(&words, "r", 2).len(), 2);
    }

    #[test]
    fn carets_count_as_browsers_count_them() {
        let text = "é😀x";
        assert_eq!(byte_offset(text, 1), 2);
        assert_eq!(byte_offset(text, 3), 6);
        assert_eq!(byte_offset(text, 4), 7);
        assert_eq!(utf16_offset(text, 6), 3);
    }
}
