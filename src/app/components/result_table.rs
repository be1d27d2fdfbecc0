//! A query's answer as a table, with its size and time.

use crate::app::format;
use crate::context;
use crate::model::QueryResult;
use leptos::prelude::*;

/// The rows, each linked to its context when the result has the `source` and `timestamp`
/// columns.
#[component]
pub fn ResultTable(result: QueryResult) -> impl IntoView {
    let columns = result.columns.clone();
    let with_context = ["source", "timestamp"]
        .iter()
        .all(|name| columns.iter().any(|c| c == name));
    let summary = format!(
        "{} rows in {} {}{}",
        result.row_count,
        format::millis(result.execution_ms),
        result.engine.describe(),
        if result.truncated { " (truncated)" } else { "" }
    );
    view! {
        <p class="hint" data-testid="sql-summary">{summary}</p>
        <div class="table-wrap">
            <table data-testid="sql-result">
                <thead>
                    <tr>
                        {result.columns.into_iter().map(|c| view! { <th>{c}</th> }).collect_view()}
                        {with_context.then(|| view! { <th></th> })}
                    </tr>
                </thead>
                <tbody>
                    {result
                        .rows
                        .into_iter()
                        .map(|row| {
                            let context_link = with_context.then(|| {
                                let href = context::of_row(&columns, &row).map(|c| c.href());
                                view! {
                                    <td class="sql-context">
                                        {href.map(|href| view! { <a href=href data-testid="row-context">"context"</a> })}
                                    </td>
                                }
                            });
                            view! {
                                <tr>
                                    {row
                                        .into_iter()
                                        .map(|cell| {
                                            let text = match cell {
                                                serde_json::Value::String(s) => s,
                                                serde_json::Value::Null => "NULL".to_owned(),
                                                other => other.to_string(),
                                            };
                                            view! { <td>{text}</td> }
                                        })
                                        .collect_view()}
                                    {context_link}
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
