//! GoAccess's report panels as lakepulse keeps them: which requests each panel counts and
//! under what key, and the SQL that asks the same of the lake for any range. The live
//! metrics count by these rules and the dashboard links each panel to its SQL, so a window on
//! screen and a query over the same minutes agree, and both agree with GoAccess's JSON report
//! of the same log (checked by `tests/integration/goaccess.rs`).
//!
//! Where lakepulse differs from GoAccess on purpose: a visitor's day is the UTC day (GoAccess
//! takes the date as the log wrote it, in the server's zone), and a static file is judged by
//! its path without the query string (GoAccess's `--all-static-files`), so `/app.js?v=3` is
//! one. The extensions are GoAccess's defaults as its packaged configuration lists them.

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// A breakdown of requests in GoAccess's report.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "ssr", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Panel {
    /// Requests by the browser (or crawler) their user agent names.
    Browsers,
    /// Requests by the client's operating system.
    OperatingSystems,
    /// Requests by the host of their referrer: the sites that send visitors.
    ReferringSites,
    /// Requests answered 404, by path.
    NotFound,
    /// Requests for static files (stylesheets, scripts, images, fonts, downloads), by path.
    StaticFiles,
    /// Requests by the virtual host they were for.
    VirtualHosts,
    /// Requests by client address.
    Hosts,
    /// Requests by hour of the day (UTC).
    HourOfDay,
}

impl Panel {
    /// Every panel, in the order GoAccess's report shows them.
    pub const ALL: [Panel; 8] = [
        Panel::StaticFiles,
        Panel::NotFound,
        Panel::Hosts,
        Panel::OperatingSystems,
        Panel::Browsers,
        Panel::HourOfDay,
        Panel::VirtualHosts,
        Panel::ReferringSites,
    ];

    /// The panel's heading.
    pub fn title(self) -> &'static str {
        match self {
            Panel::Browsers => "Browsers",
            Panel::OperatingSystems => "Operating systems",
            Panel::ReferringSites => "Referring sites",
            Panel::NotFound => "Not found (404)",
            Panel::StaticFiles => "Static files",
            Panel::VirtualHosts => "Virtual hosts",
            Panel::Hosts => "Hosts",
            Panel::HourOfDay => "Hour of day (UTC)",
        }
    }

    /// The panel's name in JSON, URLs and test ids.
    pub fn id(self) -> &'static str {
        match self {
            Panel::Browsers => "browsers",
            Panel::OperatingSystems => "operating_systems",
            Panel::ReferringSites => "referring_sites",
            Panel::NotFound => "not_found",
            Panel::StaticFiles => "static_files",
            Panel::VirtualHosts => "virtual_hosts",
            Panel::Hosts => "hosts",
            Panel::HourOfDay => "hour_of_day",
        }
    }

    /// What the panel's keys are, as its SQL's first column names them.
    pub fn key_name(self) -> &'static str {
        match self {
            Panel::Browsers => "browser",
            Panel::OperatingSystems => "os",
            Panel::ReferringSites => "site",
            Panel::NotFound | Panel::StaticFiles => "path",
            Panel::VirtualHosts => "vhost",
            Panel::Hosts => "ip",
            Panel::HourOfDay => "hour_of_day",
        }
    }

    /// The SQL that answers the panel for `range`, hits and visitors per key, busiest first.
    pub fn sql(self, range: &Range) -> String {
        let (key, only) = match self {
            Panel::Browsers => ("coalesce(browser, 'Unknown')", None),
            Panel::OperatingSystems => ("coalesce(os, 'Unknown')", None),
            Panel::ReferringSites => (
                REFERRING_SITE_SQL,
                Some(format!("{REFERRING_SITE_SQL} <> ''")),
            ),
            Panel::NotFound => ("endpoint", Some("status = 404".to_owned())),
            Panel::StaticFiles => ("endpoint", Some(static_file_sql())),
            Panel::VirtualHosts => ("vhost", Some("vhost IS NOT NULL".to_owned())),
            Panel::Hosts => ("ip", Some("ip IS NOT NULL".to_owned())),
            Panel::HourOfDay => ("date_part('hour', timestamp)", None),
        };
        let filter = only.map_or_else(
            || range.condition(),
            |only| format!("{}\n  AND {only}", range.condition()),
        );
        let order = match self {
            Panel::HourOfDay => "1",
            _ => "hits DESC",
        };
        format!(
            "SELECT {key} AS {name},\n       count(*) AS hits,\n       {VISITORS_SQL} AS visitors,\n       sum(bytes) AS bytes\nFROM logs\nWHERE {filter}\nGROUP BY 1\nORDER BY {order}\nLIMIT 100",
            name = self.key_name()
        )
    }
}

/// Requests, unique visitors and bytes per day over `range`: GoAccess's visitors panel. The
/// sum of the `visitors` column is the report's "unique visitors".
pub fn visitors_sql(range: &Range) -> String {
    format!(
        "SELECT date_trunc('day', timestamp) AS day,\n       count(*) AS hits,\n       {VISITORS_SQL} AS visitors,\n       sum(bytes) AS bytes\nFROM logs\nWHERE {}\nGROUP BY 1\nORDER BY 1 DESC",
        range.condition()
    )
}

/// A visitor is a client address with one user agent on one day; requests answered 4xx do not
/// make one (a scanner's misses are not visits), as GoAccess counts by default.
const VISITORS_SQL: &str = "count(DISTINCT CASE WHEN status NOT BETWEEN 400 AND 499\n                 THEN concat(ip, '|', to_char(timestamp, '%Y-%m-%d'), '|', user_agent) END)";

/// The referrer's host, as [`referring_site`] reads it.
const REFERRING_SITE_SQL: &str = "split_part(split_part(referrer, '//', 2), '/', 1)";

/// Whether a request counts as a visit (see [`VISITORS_SQL`]).
pub fn makes_a_visitor(status: u16) -> bool {
    !(400..500).contains(&status)
}

/// The site a referrer names: what follows its first `//`, up to the next `/`. None when it
/// names none (`-`, a bare path, `android-app:` without `//`).
pub fn referring_site(referrer: &str) -> Option<&str> {
    // `//` comes within the first bytes: a pair scan finds it sooner than a substring
    // searcher is set up.
    let slashes = referrer
        .as_bytes()
        .windows(2)
        .position(|pair| pair == b"//")?;
    let rest = &referrer[slashes + 2..];
    let site = rest.split('/').next().unwrap_or_default();
    (!site.is_empty()).then_some(site)
}

/// The extensions of static files: GoAccess's defaults.
pub const STATIC_EXTENSIONS: [&str; 37] = [
    "css", "js", "jpg", "png", "gif", "ico", "jpeg", "pdf", "txt", "csv", "mpeg", "mpg", "swf",
    "woff", "woff2", "xls", "xlsx", "doc", "docx", "ppt", "pptx", "zip", "mp3", "mp4", "exe",
    "iso", "gz", "rar", "svg", "bmp", "tar", "tgz", "tiff", "tif", "ttf", "flv", "avi",
];

/// Whether `path` names a static file: it ends, in any case, with one of the extensions and
/// is more than the extension alone. A 404 is counted as not found instead.
pub fn is_static_file(path: &str) -> bool {
    let Some((stem, extension)) = path.rsplit_once('.') else {
        return false;
    };
    !stem.is_empty()
        && STATIC_EXTENSIONS
            .iter()
            .any(|known| known.eq_ignore_ascii_case(extension))
}

fn static_file_sql() -> String {
    format!(
        "status <> 404 AND regexp_like(endpoint, '.\\.({})$', 'i')",
        STATIC_EXTENSIONS.join("|")
    )
}

/// The event times a panel's SQL covers: from (inclusive) and to (exclusive), each open when
/// None.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Range {
    /// The first instant counted.
    pub from: Option<DateTime<Utc>>,
    /// The first instant no longer counted.
    pub to: Option<DateTime<Utc>>,
}

impl Range {
    fn condition(&self) -> String {
        let at = |t: DateTime<Utc>| t.to_rfc3339_opts(SecondsFormat::Micros, true);
        match (self.from, self.to) {
            (Some(from), Some(to)) => {
                format!("timestamp >= '{}' AND timestamp < '{}'", at(from), at(to))
            }
            (Some(from), None) => format!("timestamp >= '{}'", at(from)),
            (None, Some(to)) => format!("timestamp < '{}'", at(to)),
            (None, None) => "true".to_owned(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_referrer_names_its_site_as_goaccess_reads_it() {
        assert_eq!(
            referring_site("https://www.google.com/search?q=x"),
            Some("www.google.com")
        );
        assert_eq!(referring_site("http://example.com"), Some("example.com"));
        assert_eq!(
            referring_site("http://a.example:8080/x//y"),
            Some("a.example:8080")
        );
        assert_eq!(referring_site("-"), None);
        assert_eq!(referring_site("/relative/page"), None);
        assert_eq!(referring_site("https:///nohost"), None);
    }

    #[test]
    fn static_files_by_extension_in_any_case_but_not_the_bare_extension() {
        for path in [
            "/app.js",
            "/img/Logo.PNG",
            "/f/report.pdf",
            "/font.woff2",
            "/a.tar",
        ] {
            assert!(is_static_file(path), "{path}");
        }
        for path in [
            "/",
            "/api/items",
            ".js",
            "/index.html",
            "/archive.tar.bz2",
            "/js",
        ] {
            assert!(!is_static_file(path), "{path}");
        }
    }

    #[test]
    fn panel_sql_keeps_to_its_range_and_its_requests() {
        let range = Range {
            from: DateTime::from_timestamp(1_700_000_000, 0),
            to: DateTime::from_timestamp(1_700_000_300, 0),
        };
        let sql = Panel::NotFound.sql(&range);
        assert!(sql.contains(
            "timestamp >= '2023-11-14T22:13:20.000000Z' AND timestamp < '2023-11-14T22:18:20.000000Z'"
        ));
        assert!(sql.contains("status = 404"));
        assert!(Panel::StaticFiles
            .sql(&Range::default())
            .contains("woff2|xls"));
        assert!(visitors_sql(&Range::default()).contains("WHERE true"));
    }
}
