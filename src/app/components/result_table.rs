//! A query's answer as a table, with its size and time.

use crate::app::format;
use crate::model::QueryResult;
use leptos::prelude::*;

#[component]
pub fn ResultTable(result: QueryResult) -> impl IntoView {
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
                    <tr>{result.columns.into_iter().map(|c| view! { <th>{c}</th> }).collect_view()}</tr>
                </thead>
                <tbody>
                    {result
                        .rows
                        .into_iter()
                        .map(|row| {
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
                                </tr>
                            }
                        })
                        .collect_view()}
                </tbody>
            </table>
        </div>
    }
}
