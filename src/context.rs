//! A log line's context, as Loki's "show context" gives it: the events just before and after
//! one instant from the same source (or from one session of it), by event time. The lake
//! answers, over every partition and with every field in full; the live ring adds the events
//! no commit holds yet. The request is the page's URL, so a context is shared by its link,
//! and its SQL is the query the page ran, to take further in the workbench.
//!
//! The anchor is an instant, not a row: a row has no name a producer would know, and an
//! instant with the source is what a user copies from a log line. Every event at that instant
//! is an anchor, to the microsecond (the lake's precision: a producer's nanoseconds are cut
//! there, in the URL and in the live ring's events alike, or an event would not meet its own
//! row). Context is sought within a day either side (a source silent for longer has no context
//! worth the scan).

use crate::model::LogEvent;
use chrono::{DateTime, Duration, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// Events each side of the anchor unless asked otherwise.
pub const DEFAULT_LINES: usize = 25;
/// Events each side at most.
pub const MAX_LINES: usize = 200;
/// How far from the anchor context is sought.
const REACH: Duration = Duration::days(1);

/// Which events to show around which instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::IntoParams, utoipa::ToSchema))]
#[cfg_attr(feature = "ssr", into_params(parameter_in = Query))]
pub struct ContextRequest {
    /// The source whose events are shown.
    pub source: String,
    /// The anchor's event time.
    pub at: DateTime<Utc>,
    /// Only this session's events, when given.
    pub session: Option<String>,
    /// Events each side of the anchor (25 by default, 200 at most).
    pub lines: Option<usize>,
}

/// Why a URL names no context.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ContextRequestError {
    /// A parameter it needs is missing or blank.
    #[error("a context needs the {0} parameter")]
    Missing(&'static str),
    /// `at` is not an RFC 3339 time.
    #[error("{0:?} is not a time such as 2026-12-05T06:00:00.123Z")]
    BadTime(String),
    /// `lines` is not a number.
    #[error("{0:?} is not a number of lines")]
    BadLines(String),
}

impl ContextRequest {
    /// The context of `event`: its source around its time.
    pub fn around(event: &LogEvent) -> Self {
        ContextRequest {
            source: event.source.clone(),
            at: to_lake_precision(event.timestamp),
            session: None,
            lines: None,
        }
    }

    /// The same context narrowed to one session (or widened to the whole source with None).
    pub fn in_session(&self, session: Option<String>) -> Self {
        ContextRequest {
            session,
            ..self.clone()
        }
    }

    /// Events each side, as asked within bounds.
    pub fn lines(&self) -> usize {
        self.lines.unwrap_or(DEFAULT_LINES).clamp(1, MAX_LINES)
    }

    /// Reads a request from URL query parameters (`get` looks one up by name).
    pub fn from_query(get: impl Fn(&str) -> Option<String>) -> Result<Self, ContextRequestError> {
        let given = |name| get(name).filter(|v| !v.trim().is_empty());
        let source = given("source").ok_or(ContextRequestError::Missing("source"))?;
        let at = given("at").ok_or(ContextRequestError::Missing("at"))?;
        let at = DateTime::parse_from_rfc3339(at.trim())
            .map_err(|_| ContextRequestError::BadTime(at.clone()))?
            .with_timezone(&Utc);
        let at = to_lake_precision(at);
        let lines = given("lines")
            .map(|l| {
                l.trim()
                    .parse()
                    .map_err(|_| ContextRequestError::BadLines(l.clone()))
            })
            .transpose()?;
        Ok(ContextRequest {
            source,
            at,
            session: given("session"),
            lines,
        })
    }

    /// The page that shows this context.
    pub fn href(&self) -> String {
        let mut params = form_urlencoded::Serializer::new(String::new());
        params.append_pair("source", &self.source);
        params.append_pair("at", &instant(self.at));
        if let Some(session) = &self.session {
            params.append_pair("session", session);
        }
        if let Some(lines) = self.lines {
            params.append_pair("lines", &lines.to_string());
        }
        format!("/context?{}", params.finish())
    }

    /// The query that reads the context from the lake: the newest events up to the anchor
    /// (anchors included) and the oldest after it, oldest first, named as [`LogEvent`]'s
    /// JSON names its fields.
    pub fn sql(&self) -> String {
        let mut only = format!(
            "source = {}\n    AND event_date BETWEEN '{}' AND '{}'",
            sql_string(&self.source),
            (self.at - REACH).date_naive(),
            (self.at + REACH).date_naive(),
        );
        if let Some(session) = &self.session {
            only.push_str(&format!("\n    AND session_id = {}", sql_string(session)));
        }
        let at = instant(self.at);
        let lines = self.lines();
        format!(
            "(SELECT {EVENT_COLUMNS}\n  FROM logs\n  WHERE {only}\n    AND timestamp <= '{at}' AND timestamp >= '{earliest}'\n  ORDER BY timestamp DESC, kafka_partition DESC, kafka_offset DESC\n  LIMIT {before})\nUNION ALL\n(SELECT {EVENT_COLUMNS}\n  FROM logs\n  WHERE {only}\n    AND timestamp > '{at}' AND timestamp <= '{latest}'\n  ORDER BY timestamp, kafka_partition, kafka_offset\n  LIMIT {lines})\nORDER BY timestamp, kafka_partition, kafka_offset",
            earliest = instant(self.at - REACH),
            latest = instant(self.at + REACH),
            before = lines + 1,
        )
    }

    fn selects(&self, event: &LogEvent) -> bool {
        event.source == self.source
            && self
                .session
                .as_ref()
                .is_none_or(|s| event.session_id.as_ref() == Some(s))
            && event.timestamp >= self.at - REACH
            && event.timestamp <= self.at + REACH
    }
}

/// The lake's columns under the names of [`LogEvent`]'s JSON, and the row's place in Kafka to
/// order events of the same instant as they were produced.
const EVENT_COLUMNS: &str = "timestamp, level, source, method, endpoint, status, response_time_ms AS \"responseTime\", user_id AS \"userId\", session_id AS \"sessionId\", ip, bytes, message, raw, user_agent AS \"userAgent\", referrer, vhost, protocol, query, browser, os, device, bot, attributes, kafka_partition, kafka_offset";

/// An instant as the SQL and the URL write it: RFC 3339 to the microsecond, in UTC.
fn instant(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

/// An instant as the lake keeps it: to the microsecond.
fn to_lake_precision(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// `text` as an SQL string literal.
pub fn sql_string(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// Where an event stands relative to the anchor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Place {
    /// Earlier than the anchor.
    Before,
    /// At the anchor's instant.
    Anchor,
    /// Later than the anchor.
    After,
}

/// One event of a context.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct ContextLine {
    /// Before, at or after the anchor.
    pub place: Place,
    /// False for an event only the live ring holds yet (its long fields may be cut).
    pub committed: bool,
    pub event: LogEvent,
}

/// The events around an anchor, oldest first.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "camelCase")]
pub struct LogContext {
    pub request: ContextRequest,
    pub lines: Vec<ContextLine>,
}

impl LogContext {
    /// The context from what the lake answered to [`ContextRequest::sql`] (oldest first) and
    /// the live ring's events (any order). A ring event is added only when the lake holds
    /// nothing later than it, which the lake's answer shows when it has fewer events after the
    /// anchor than asked: then it is one no commit holds yet, and never one shown twice.
    pub fn assemble(request: ContextRequest, lake: Vec<LogEvent>, ring: Vec<LogEvent>) -> Self {
        let lines = request.lines();
        let after_in_lake = lake.iter().filter(|e| e.timestamp > request.at).count();
        // The lake's answer comes oldest first; the ring's additions are all later than it.
        let lake_reaches = lake.iter().map(|e| e.timestamp).max();
        let mut events: Vec<(LogEvent, bool)> = lake.into_iter().map(|e| (e, true)).collect();
        if after_in_lake < lines {
            let mut uncommitted: Vec<LogEvent> = ring
                .into_iter()
                .map(|mut e| {
                    e.timestamp = to_lake_precision(e.timestamp);
                    e
                })
                .filter(|e| request.selects(e) && lake_reaches.is_none_or(|t| e.timestamp > t))
                .collect();
            uncommitted.sort_by_key(|e| e.timestamp);
            events.extend(uncommitted.into_iter().map(|e| (e, false)));
        }
        let up_to_anchor = events.partition_point(|(e, _)| e.timestamp <= request.at);
        let first = up_to_anchor.saturating_sub(lines + 1);
        let last = (up_to_anchor + lines).min(events.len());
        let lines = events
            .drain(first..last)
            .map(|(event, committed)| ContextLine {
                place: match event.timestamp.cmp(&request.at) {
                    std::cmp::Ordering::Less => Place::Before,
                    std::cmp::Ordering::Equal => Place::Anchor,
                    std::cmp::Ordering::Greater => Place::After,
                },
                committed,
                event,
            })
            .collect();
        LogContext { request, lines }
    }
}

/// The events of a query's rows whose columns are named as [`LogEvent`]'s JSON names its
/// fields (as [`ContextRequest::sql`] names them).
pub fn events_of(
    columns: &[String],
    rows: Vec<Vec<serde_json::Value>>,
) -> Result<Vec<LogEvent>, serde_json::Error> {
    rows.into_iter()
        .map(|row| {
            let object: serde_json::Map<String, serde_json::Value> =
                columns.iter().cloned().zip(row).collect();
            serde_json::from_value(serde_json::Value::Object(object))
        })
        .collect()
}

/// The context of a query result's row, when the row has a source and a time (`source` and
/// `timestamp` columns, as the table names them).
pub fn of_row(columns: &[String], row: &[serde_json::Value]) -> Option<ContextRequest> {
    let cell = |name: &str| {
        let i = columns.iter().position(|c| c == name)?;
        row.get(i)?.as_str()
    };
    let at = DateTime::parse_from_rfc3339(cell("timestamp")?).ok()?;
    Some(ContextRequest {
        source: cell("source")?.to_owned(),
        at: at.with_timezone(&Utc),
        session: None,
        lines: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(seconds: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_764_900_000 + seconds, 0).unwrap()
    }

    fn event(seconds: i64, source: &str, endpoint: &str) -> LogEvent {
        LogEvent {
            timestamp: at(seconds),
            source: source.into(),
            endpoint: endpoint.into(),
            ..LogEvent::default()
        }
    }

    fn request(lines: usize) -> ContextRequest {
        ContextRequest {
            source: "web".into(),
            at: at(10),
            session: None,
            lines: Some(lines),
        }
    }

    fn endpoints(context: &LogContext) -> Vec<(&str, Place, bool)> {
        context
            .lines
            .iter()
            .map(|l| (l.event.endpoint.as_str(), l.place, l.committed))
            .collect()
    }

    #[test]
    fn the_url_names_the_context_and_reads_back_the_same() {
        let asked = ContextRequest {
            source: "web & co".into(),
            at: DateTime::parse_from_rfc3339("2026-12-05T06:00:00.123456Z")
                .unwrap()
                .with_timezone(&Utc),
            session: Some("s 1".into()),
            lines: Some(5),
        };
        let href = asked.href();
        let query = href.strip_prefix("/context?").unwrap();
        let params: Vec<(String, String)> = form_urlencoded::parse(query.as_bytes())
            .into_owned()
            .collect();
        let get = |name: &str| {
            params
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.clone())
        };
        assert_eq!(ContextRequest::from_query(get), Ok(asked));
        assert_eq!(
            ContextRequest::from_query(|name| (name == "source").then(|| "web".into())),
            Err(ContextRequestError::Missing("at"))
        );
        assert_eq!(
            ContextRequest::from_query(|name| Some(
                if name == "at" { "yesterday" } else { "5" }.into()
            )),
            Err(ContextRequestError::BadTime("yesterday".into()))
        );
    }

    #[test]
    fn the_sql_quotes_what_the_url_says() {
        let sql = request(3).in_session(Some("it's".into())).sql();
        assert!(sql.contains("source = 'web'"), "{sql}");
        assert!(sql.contains("session_id = 'it''s'"), "{sql}");
        assert!(sql.contains("LIMIT 4)"), "{sql}");
        assert!(sql.contains("LIMIT 3)"), "{sql}");
    }

    #[test]
    fn the_ring_adds_only_what_no_commit_holds_and_the_anchor_is_in_the_middle() {
        let lake = vec![
            event(8, "web", "/a"),
            event(10, "web", "/anchor"),
            event(11, "web", "/b"),
        ];
        // The ring still holds /b (committed) and has /c, /d past the last commit, and another
        // source's event.
        let ring = vec![
            event(13, "web", "/d"),
            event(12, "api", "/other"),
            event(12, "web", "/c"),
            event(11, "web", "/b"),
        ];
        let context = LogContext::assemble(request(2), lake, ring);
        assert_eq!(
            endpoints(&context),
            [
                ("/a", Place::Before, true),
                ("/anchor", Place::Anchor, true),
                ("/b", Place::After, true),
                ("/c", Place::After, false),
            ]
        );
    }

    #[test]
    fn nanoseconds_are_cut_to_the_lakes_microseconds_so_an_event_meets_its_own_row() {
        let nanos = |n: u32| at(10) + chrono::Duration::nanoseconds(i64::from(n));
        let mut anchor = event(10, "web", "/anchor");
        anchor.timestamp = nanos(299_236_087);
        let asked = ContextRequest::around(&anchor);
        assert_eq!(asked.at, nanos(299_236_000));
        assert!(
            asked.href().contains("at=2025-12-05T02%3A00%3A10.299236Z"),
            "{}",
            asked.href()
        );
        // The ring's copy of a committed event is that event, not one more after it.
        let mut committed = anchor.clone();
        committed.timestamp = nanos(299_236_000);
        let context = LogContext::assemble(asked, vec![committed], vec![anchor]);
        assert_eq!(endpoints(&context), [("/anchor", Place::Anchor, true)]);
    }

    #[test]
    fn a_lake_with_enough_after_the_anchor_leaves_the_ring_out() {
        let lake = vec![event(10, "web", "/anchor"), event(11, "web", "/b")];
        let ring = vec![event(12, "web", "/c")];
        let context = LogContext::assemble(request(1), lake, ring);
        assert_eq!(
            endpoints(&context),
            [("/anchor", Place::Anchor, true), ("/b", Place::After, true)]
        );
    }

    #[test]
    fn an_anchor_only_the_ring_holds_is_found_there() {
        let lake = vec![event(5, "web", "/a")];
        let ring = vec![event(10, "web", "/anchor"), event(9, "web", "/z")];
        let context = LogContext::assemble(request(5), lake, ring);
        assert_eq!(
            endpoints(&context),
            [
                ("/a", Place::Before, true),
                ("/z", Place::Before, false),
                ("/anchor", Place::Anchor, false),
            ]
        );
    }

    #[test]
    fn a_row_with_a_source_and_a_time_has_a_context() {
        let columns = vec!["timestamp".to_owned(), "source".to_owned()];
        let row = vec![
            serde_json::json!("2026-12-05T06:00:00.5Z"),
            serde_json::json!("web"),
        ];
        let context = of_row(&columns, &row).unwrap();
        assert_eq!(context.source, "web");
        assert_eq!(context.at.timestamp_subsec_millis(), 500);
        assert_eq!(of_row(&columns[..1], &row[..1]), None);
    }
}
