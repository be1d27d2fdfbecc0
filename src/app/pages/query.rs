//! `/query`: the SQL workbench. The query and the table version live in the URL, and the
//! server renders the result, so a link to a query is a report anyone can open.

use crate::app::completion;
use crate::app::components::charts::ResultChart;
use crate::app::components::result_table::ResultTable;
use crate::app::components::sql_editor::SqlEditor;
use crate::app::format;
use crate::app::server_fns::{
    cancel_query, get_saved_query, get_workbench, run_query, EditSavedQuery, SavedQueryEdit,
};
use crate::model::{QueryResult, SavedQuery, WorkbenchInfo};
use leptos::form::ActionForm;
use leptos::prelude::*;
use leptos::task::spawn_local;
use leptos_router::components::Form;
use leptos_router::hooks::{use_navigate, use_query_map};
use std::sync::atomic::{AtomicU64, Ordering};

/// The workbench's sample questions (name, SQL): the cluster tests ask them too.
pub const SAMPLES: &[(&str, &str)] = &[
    (
        "Errors by endpoint",
        "SELECT endpoint, count(*) AS errors\nFROM logs\nWHERE status >= 500 OR level = 'ERROR'\nGROUP BY endpoint\nORDER BY errors DESC\nLIMIT 20",
    ),
    (
        "p95 by minute",
        "SELECT date_trunc('minute', timestamp) AS minute,\n       approx_percentile_cont(0.95) WITHIN GROUP (ORDER BY response_time_ms) AS p95_ms,\n       count(*) AS requests\nFROM logs\nGROUP BY 1\nORDER BY 1 DESC\nLIMIT 60",
    ),
    (
        "Top IPs",
        "SELECT ip, count(*) AS requests, sum(bytes) AS bytes\nFROM logs\nGROUP BY ip\nORDER BY requests DESC\nLIMIT 20",
    ),
    (
        "Status mix",
        "SELECT status, count(*) AS requests,\n       round(100.0 * count(*) / sum(count(*)) OVER (), 2) AS percent\nFROM logs\nGROUP BY status\nORDER BY requests DESC",
    ),
    (
        "Slowest requests",
        "SELECT timestamp, method, endpoint, status, response_time_ms\nFROM logs\nWHERE response_time_ms IS NOT NULL\nORDER BY response_time_ms DESC\nLIMIT 50",
    ),
];

const DEFAULT_QUERY: &str =
    "SELECT level, count(*) AS events\nFROM logs\nGROUP BY level\nORDER BY events DESC";

/// `path?sql=...&version=...` plus `extra` pairs, encoded as a browser would.
fn query_url(path: &str, sql: &str, version: Option<u64>, extra: &[(&str, &str)]) -> String {
    let mut params = form_urlencoded::Serializer::new(String::new());
    params.append_pair("sql", sql);
    if let Some(version) = version {
        params.append_pair("version", &version.to_string());
    }
    params.extend_pairs(extra);
    format!("{path}?{}", params.finish())
}

/// The workbench showing `sql` (at `version`): a shareable report.
pub fn query_href(sql: &str, version: Option<u64>) -> String {
    query_url("/query", sql, version, &[])
}

fn export_href(sql: &str, version: Option<u64>, format: &str) -> String {
    query_url("/api/export", sql, version, &[("format", format)])
}

fn next_query_id() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    format!(
        "q-{}-{}",
        chrono::Utc::now().timestamp_millis(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

/// What the workbench shows: the query and version the URL asks for (or its saved query's),
/// the saved query it is, and the answer.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
struct Shown {
    sql: String,
    version: Option<u64>,
    saved: Option<SavedQuery>,
    answer: Result<Option<QueryResult>, String>,
}

/// The saved query's own link: it shows the latest SQL saved under the number.
pub fn saved_href(id: u64) -> String {
    format!("/query?saved={id}")
}

#[component]
pub fn QueryPage() -> impl IntoView {
    let query = use_query_map();
    let asked = Memo::new(move |_| {
        let query = query.read();
        let sql = query.get("sql").unwrap_or_default();
        let version = query
            .get("version")
            .and_then(|v| v.trim().parse::<u64>().ok());
        let saved = query
            .get("saved")
            .and_then(|v| v.trim().parse::<u64>().ok());
        (sql, version, saved)
    });
    // The id of the query in flight, so it can be cancelled.
    let running = RwSignal::new(None::<String>);
    let shown = Resource::new_blocking(
        move || asked.get(),
        move |(sql, version, saved)| async move {
            let saved = match saved {
                Some(id) => Some(get_saved_query(id).await.map_err(|e| e.to_string())?),
                None => None,
            };
            // SQL in the URL beside a saved query is an edit of it; without, the saved SQL runs.
            let (sql, version) = match &saved {
                Some(query) if sql.trim().is_empty() => (query.sql.clone(), query.version),
                _ => (sql, version),
            };
            let answer = if sql.trim().is_empty() {
                Ok(None)
            } else {
                let id = next_query_id();
                // Only a browser can cancel; the server renders the finished page.
                let cancellable = cfg!(feature = "hydrate");
                if cancellable {
                    running.set(Some(id.clone()));
                }
                let answer = run_query(sql.clone(), version, Some(id)).await;
                if cancellable {
                    running.set(None);
                }
                answer.map(Some).map_err(|e| e.to_string())
            };
            Ok::<_, String>(Shown {
                sql,
                version,
                saved,
                answer,
            })
        },
    );
    let edit = ServerAction::<EditSavedQuery>::new();
    // A query just saved is opened under its own link.
    let navigate = use_navigate();
    Effect::new(move |_| {
        if let Some(Ok(edited)) = edit.value().get() {
            if let (SavedQueryEdit::Save, Some(saved)) = (edited.edit, edited.query) {
                navigate(&saved_href(saved.id), Default::default());
            }
        }
    });
    let info = Resource::new_blocking(
        move || (asked.get(), edit.version().get()),
        |_| get_workbench(),
    );
    // What the editor completes words to, once the schema has come.
    let vocabulary = Memo::new(move |_| {
        info.get()
            .and_then(Result::ok)
            .map(|info| completion::vocabulary(&info.tables, &info.columns, &info.functions))
            .unwrap_or_default()
    });
    let cancel = move |_| {
        if let Some(id) = running.get_untracked() {
            spawn_local(async move {
                let _ = cancel_query(id).await;
            });
        }
    };
    let refused = move || match edit.value().get() {
        Some(Err(error)) => {
            Some(view! { <p class="error" data-testid="saved-error">{error.to_string()}</p> })
        }
        _ => None,
    };
    view! {
        <div class="workbench">
            <section class="panel editor-panel" aria-label="Query">
                <h2>"SQL workbench"</h2>
                <Transition fallback=|| view! { <p class="hint">"Running…"</p> }>
                    {move || Suspend::new(async move {
                        let shown = match shown.await {
                            Ok(shown) => shown,
                            Err(error) => return view! { <p class="error" data-testid="sql-error">{error}</p> }.into_any(),
                        };
                        let Shown { sql, version, saved, answer } = shown;
                        let initial = if sql.is_empty() { DEFAULT_QUERY.to_owned() } else { sql.clone() };
                        let saved_line = saved.clone().map(|query| {
                            let edited = query.sql != sql || query.version != version;
                            let sql = sql.clone();
                            view! {
                                <p class="saved-query">
                                    "Saved query "
                                    <a href=saved_href(query.id) data-testid="saved-name">{query.name.clone()}</a>
                                    {edited.then(|| view! {
                                        " · edited · "
                                        <ActionForm action=edit attr:class="inline">
                                            <input type="hidden" name="edit" value="update" />
                                            <input type="hidden" name="id" value=query.id.to_string() />
                                            <input type="hidden" name="sql" value=sql.clone() />
                                            {version.map(|v| view! { <input type="hidden" name="version" value=v.to_string() /> })}
                                            <button type="submit" class="secondary" data-testid="saved-update">"Update saved query"</button>
                                        </ActionForm>
                                    })}
                                </p>
                            }
                        });
                        let result = match answer {
                            Ok(None) => view! { <p class="hint">"Write a query over " <code>"logs"</code> " and run it."</p> }.into_any(),
                            Ok(Some(answer)) => view! {
                                <p class="downloads">
                                    <a href=export_href(&sql, version, "csv") download data-testid="download-csv">"CSV"</a>
                                    " · "
                                    <a href=export_href(&sql, version, "json") download data-testid="download-json">"JSON"</a>
                                    " · "
                                    <a href=export_href(&sql, version, "ndjson") download data-testid="download-ndjson">"NDJSON"</a>
                                    " · "
                                    <a href=export_href(&sql, version, "parquet") download data-testid="download-parquet">"Parquet"</a>
                                    " · "
                                    <a href=query_href(&sql, version) data-testid="permalink">"permalink"</a>
                                    {version.map(|v| format!(" · table version {v}"))}
                                </p>
                                <ActionForm action=edit attr:class="save-query">
                                    <input type="hidden" name="edit" value="save" />
                                    <input type="hidden" name="sql" value=sql.clone() />
                                    {version.map(|v| view! { <input type="hidden" name="version" value=v.to_string() /> })}
                                    <input type="text" name="name" required placeholder="Name this query" aria-label="Name" data-testid="save-name" />
                                    <button type="submit" class="secondary" data-testid="save-query">"Save"</button>
                                </ActionForm>
                                <ResultChart result=answer.clone() />
                                <ResultTable result=answer />
                            }
                            .into_any(),
                            Err(error) => view! { <p class="error" data-testid="sql-error">{error}</p> }.into_any(),
                        };
                        view! {
                            {saved_line}
                            <Form method="GET" action="/query">
                                <SqlEditor initial vocabulary=Signal::from(vocabulary) />
                                {saved.map(|q| view! { <input type="hidden" name="saved" value=q.id.to_string() /> })}
                                <div class="editor-actions">
                                    <button type="submit" data-testid="sql-run">"Run"</button>
                                    <span class="hint">"Ctrl/⌘ + Enter"</span>
                                    <label>
                                        "Table version "
                                        <input
                                            type="number"
                                            name="version"
                                            min="0"
                                            placeholder="latest"
                                            value=version.map(|v| v.to_string())
                                            data-testid="sql-version"
                                        />
                                    </label>
                                    <Show when=move || running.get().is_some()>
                                        <button type="button" class="secondary" on:click=cancel data-testid="sql-cancel">
                                            "Cancel"
                                        </button>
                                    </Show>
                                </div>
                            </Form>
                            {refused}
                            {result}
                        }
                        .into_any()
                    })}
                </Transition>
            </section>
            <aside class="panel side" aria-label="Schema, samples and history">
                <Transition fallback=|| view! { <p class="hint">"Loading…"</p> }>
                    {move || Suspend::new(async move {
                        match info.await {
                            Ok(info) => view! { <Sidebar info edit /> }.into_any(),
                            Err(error) => view! { <p class="error">{error.to_string()}</p> }.into_any(),
                        }
                    })}
                </Transition>
            </aside>
        </div>
    }
}

#[component]
fn Sidebar(info: WorkbenchInfo, edit: ServerAction<EditSavedQuery>) -> impl IntoView {
    view! {
        <h3>"Saved queries"</h3>
        <ul class="saved" data-testid="saved-queries">
            {info
                .saved
                .into_iter()
                .map(|query| {
                    view! {
                        <li>
                            <a href=saved_href(query.id) title=query.sql.clone() data-testid="saved-link">{query.name.clone()}</a>
                            <details>
                                <summary aria-label=format!("Rename or delete {}", query.name)>"…"</summary>
                                <ActionForm action=edit attr:class="inline">
                                    <input type="hidden" name="edit" value="rename" />
                                    <input type="hidden" name="id" value=query.id.to_string() />
                                    <input type="text" name="name" required value=query.name.clone() aria-label="New name" data-testid="rename-name" />
                                    <button type="submit" class="secondary" data-testid="rename-query">"Rename"</button>
                                </ActionForm>
                                <ActionForm action=edit attr:class="inline">
                                    <input type="hidden" name="edit" value="delete" />
                                    <input type="hidden" name="id" value=query.id.to_string() />
                                    <button type="submit" class="secondary" data-testid="delete-query">"Delete"</button>
                                </ActionForm>
                            </details>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
        <h3>"Table " <code>"logs"</code></h3>
        <ul class="schema" data-testid="schema">
            {info
                .columns
                .into_iter()
                .map(|c| view! { <li><code>{c.name}</code> " " <span class="type">{c.data_type}</span></li> })
                .collect_view()}
        </ul>
        <h3>"Samples"</h3>
        <ul class="samples">
            {SAMPLES
                .iter()
                .map(|(title, sql)| view! { <li><a href=query_href(sql, None)>{*title}</a></li> })
                .collect_view()}
        </ul>
        <h3>"History"</h3>
        <ul class="history" data-testid="history">
            {info
                .history
                .into_iter()
                .map(|entry| {
                    let summary = format!(
                        "{} · {} rows · {}",
                        entry.at.format("%H:%M:%S"),
                        entry.rows,
                        format::millis(entry.execution_ms)
                    );
                    view! {
                        <li>
                            <a href=query_href(&entry.sql, entry.version) title=entry.sql.clone()>
                                <code>{entry.sql.lines().next().unwrap_or_default().to_owned()}</code>
                            </a>
                            <span class="hint">{summary}</span>
                        </li>
                    }
                })
                .collect_view()}
        </ul>
        <h3>"Table versions"</h3>
        <table class="versions" data-testid="versions">
            <tbody>
                {info
                    .versions
                    .into_iter()
                    .map(|v| {
                        let when = v.timestamp.map_or(String::new(), |t| t.format("%H:%M:%S").to_string());
                        let rows = v.rows_added.map_or(String::new(), |r| format!("+{r} rows"));
                        let href = query_href("SELECT count(*) AS events FROM logs", Some(v.version));
                        view! {
                            <tr>
                                <td><a href=href>{format!("v{}", v.version)}</a></td>
                                <td>{v.operation}</td>
                                <td>{when}</td>
                                <td class="num">{rows}</td>
                            </tr>
                        }
                    })
                    .collect_view()}
            </tbody>
        </table>
    }
}
