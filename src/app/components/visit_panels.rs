//! GoAccess's report over the page's window: unique visitors, then a table per panel
//! (static files, not found, hosts, systems, browsers, hours, virtual hosts, referring
//! sites). Each links to its SQL over the window's exact range, to ask it of any other range.

use crate::app::format;
use crate::app::pages::query::query_href;
use crate::model::{PanelRows, VisitReport};
use crate::visits::{visitors_sql, Range};
use leptos::prelude::*;

fn range(report: &VisitReport) -> Range {
    Range {
        from: report.from,
        to: report.to,
    }
}

#[component]
pub fn VisitPanels(visits: RwSignal<Option<VisitReport>>) -> impl IntoView {
    let report = move || visits.get().unwrap_or_default();
    view! {
        <section class="visits" aria-label="Visits">
            <h2>
                "Visits (" {move || report().window.label()} ") · "
                <span data-testid="unique-visitors">{move || format::count(report().visitors as f64)}</span>
                " unique visitors · "
                <a class="more" data-testid="visitors-sql" href=move || query_href(&visitors_sql(&range(&report())), None)>"per day in SQL"</a>
            </h2>
            <div class="visit-panels">
                {move || {
                    let report = report();
                    let range = range(&report);
                    report
                        .panels
                        .into_iter()
                        .map(|rows| view! { <PanelTable rows range /> })
                        .collect_view()
                }}
            </div>
        </section>
    }
}

#[component]
fn PanelTable(rows: PanelRows, range: Range) -> impl IntoView {
    let panel = rows.panel;
    let total = rows.hits.max(1) as f64;
    let sql = query_href(&panel.sql(&range), None);
    view! {
        <section class="panel visit-panel" data-testid=format!("panel-{}", panel.id())>
            <h3>{panel.title()} " " <a class="more" href=sql>"SQL"</a></h3>
            {if rows.rows.is_empty() {
                view! { <p class="empty">"None in this window."</p> }.into_any()
            } else {
                view! {
                    <table>
                        <tbody>
                            {rows
                                .rows
                                .into_iter()
                                .map(|row| {
                                    let share = row.hits as f64 * 100.0 / total;
                                    view! {
                                        <tr>
                                            <td class="key" title=row.key.clone()><code>{row.key.clone()}</code></td>
                                            <td class="num">{format::count(row.hits as f64)}</td>
                                            <td class="share"><meter min="0" max="100" value=share title=format::percent(share)></meter></td>
                                        </tr>
                                    }
                                })
                                .collect_view()}
                        </tbody>
                    </table>
                }
                    .into_any()
            }}
        </section>
    }
}
