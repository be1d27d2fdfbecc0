//! Live charts, drawn by ECharts through charming. The server renders the frames (with a
//! summary for readers without JavaScript); in the browser each chart is created once and
//! then updated in place from the metrics the SSE stream brings, once a second.

use crate::app::format;
use crate::model::MetricsSnapshot;
use leptos::prelude::*;

#[component]
fn Frame(id: &'static str, title: &'static str, summary: Signal<String>) -> impl IntoView {
    view! {
        <figure class="panel chart-panel">
            <figcaption>{title}</figcaption>
            <div id=id class="chart" data-testid=id role="img" aria-label=move || summary.get()></div>
        </figure>
    }
}

#[component]
pub fn LiveCharts(metrics: RwSignal<MetricsSnapshot>) -> impl IntoView {
    #[cfg(feature = "hydrate")]
    draw::keep_drawing(metrics);
    let summary = move |f: fn(&MetricsSnapshot) -> String| Signal::derive(move || metrics.with(f));
    view! {
        <section class="charts" aria-label="Charts">
            <Frame id="chart-requests" title="Requests and errors / 10 s" summary=summary(|m| {
                let total: u64 = m.timeline.iter().map(|p| p.requests).sum();
                format!("{} requests in the last ten minutes", format::count(total as f64))
            }) />
            <Frame id="chart-latency" title="Response time p50 / p95 / p99" summary=summary(|m| {
                let p95 = m.timeline.iter().rev().find_map(|p| p.p95);
                format!("latest p95 {}", p95.map_or("–".to_owned(), format::millis))
            }) />
            <Frame id="chart-status" title="Status mix" summary=summary(|m| {
                m.by_status.iter().map(|(class, n)| format!("{class}: {n}")).collect::<Vec<_>>().join(", ")
            }) />
            <Frame id="chart-endpoints" title="Top endpoints" summary=summary(|m| {
                m.by_endpoint.by_volume.first().map_or("no traffic".to_owned(), |e| format!("busiest: {}", e.endpoint))
            }) />
        </section>
    }
}

#[cfg(feature = "hydrate")]
pub mod draw {
    use crate::model::{MetricsSnapshot, QueryResult};
    use charming::component::{Axis, Grid, Legend};
    use charming::element::{AxisType, Tooltip, Trigger};
    use charming::series::{Bar, Line, Pie};
    use charming::{Chart, Echarts, WasmRenderer};
    use leptos::prelude::*;

    fn frame() -> Chart {
        Chart::new()
            .tooltip(Tooltip::new().trigger(Trigger::Axis))
            .grid(
                Grid::new()
                    .left("3%")
                    .right("4%")
                    .top(36)
                    .bottom("3%")
                    .contain_label(true),
            )
    }

    fn times(m: &MetricsSnapshot) -> Vec<String> {
        m.timeline
            .iter()
            .map(|p| p.t.format("%H:%M:%S").to_string())
            .collect()
    }

    pub fn requests(m: &MetricsSnapshot) -> Chart {
        frame()
            .legend(Legend::new().top(0))
            .x_axis(Axis::new().type_(AxisType::Category).data(times(m)))
            .y_axis(Axis::new().type_(AxisType::Value))
            .series(
                Line::new()
                    .name("requests")
                    .show_symbol(false)
                    .data(m.timeline.iter().map(|p| p.requests as i64).collect()),
            )
            .series(
                Line::new()
                    .name("errors")
                    .show_symbol(false)
                    .data(m.timeline.iter().map(|p| p.errors as i64).collect()),
            )
    }

    pub fn latency(m: &MetricsSnapshot) -> Chart {
        let line = |name: &str, pick: fn(&crate::model::TimelinePoint) -> Option<f64>| {
            Line::new()
                .name(name)
                .show_symbol(false)
                .data(m.timeline.iter().map(pick).collect())
        };
        frame()
            .legend(Legend::new().top(0))
            .x_axis(Axis::new().type_(AxisType::Category).data(times(m)))
            .y_axis(Axis::new().type_(AxisType::Value).name("ms"))
            .series(line("p50", |p| p.p50))
            .series(line("p95", |p| p.p95))
            .series(line("p99", |p| p.p99))
    }

    pub fn status(m: &MetricsSnapshot) -> Chart {
        Chart::new()
            .tooltip(Tooltip::new().trigger(Trigger::Item))
            .legend(Legend::new().top(0))
            .series(
                Pie::new().radius(vec!["40%", "70%"]).data(
                    m.by_status
                        .iter()
                        .map(|(class, n)| (*n as i64, class.as_str()))
                        .collect(),
                ),
            )
    }

    pub fn endpoints(m: &MetricsSnapshot) -> Chart {
        let top: Vec<_> = m.by_endpoint.by_volume.iter().rev().collect();
        frame()
            .x_axis(Axis::new().type_(AxisType::Value))
            .y_axis(
                Axis::new()
                    .type_(AxisType::Category)
                    .data(top.iter().map(|e| e.endpoint.clone()).collect()),
            )
            .series(
                Bar::new()
                    .name("requests")
                    .data(top.iter().map(|e| e.requests as i64).collect()),
            )
    }

    /// Draws `chart` into the element `id`: the first time it creates the chart, after that
    /// it updates the same one in place.
    pub fn show(
        drawn: StoredValue<Vec<(&'static str, Echarts)>, LocalStorage>,
        id: &'static str,
        chart: &Chart,
    ) {
        drawn.update_value(|drawn| match drawn.iter().find(|(shown, _)| *shown == id) {
            Some((_, echarts)) => WasmRenderer::update(echarts, chart),
            None => match WasmRenderer::new_opt(None, None).render(id, chart) {
                Ok(echarts) => drawn.push((id, echarts)),
                Err(error) => leptos::logging::error!("chart {id}: {error:?}"),
            },
        });
    }

    pub fn keep_drawing(metrics: RwSignal<MetricsSnapshot>) {
        let drawn = StoredValue::new_local(Vec::new());
        Effect::new(move |_| {
            metrics.with(|m| {
                show(drawn, "chart-requests", &requests(m));
                show(drawn, "chart-latency", &latency(m));
                show(drawn, "chart-status", &status(m));
                show(drawn, "chart-endpoints", &endpoints(m));
            })
        });
    }

    /// A query result as a chart: the first column along the x axis, every numeric column a
    /// series; lines when the first column is time, bars otherwise.
    pub fn result(result: &QueryResult) -> Option<Chart> {
        let numeric: Vec<usize> = (1..result.columns.len())
            .filter(|&c| result.rows.iter().any(|r| r[c].is_number()))
            .collect();
        if numeric.is_empty() {
            return None;
        }
        let label = |v: &serde_json::Value| match v {
            serde_json::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        let over_time = result
            .rows
            .first()
            .and_then(|r| r[0].as_str())
            .is_some_and(|s| {
                chrono::DateTime::parse_from_rfc3339(s).is_ok()
                    || s.len() == 10 && s.as_bytes()[4] == b'-'
            });
        let mut rows: Vec<&Vec<serde_json::Value>> = result.rows.iter().collect();
        if over_time {
            rows.sort_by_key(|r| label(&r[0]));
        }
        let mut chart = frame()
            .legend(Legend::new().top(0))
            .x_axis(
                Axis::new()
                    .type_(AxisType::Category)
                    .data(rows.iter().map(|r| label(&r[0])).collect()),
            )
            .y_axis(Axis::new().type_(AxisType::Value));
        for c in numeric {
            let values: Vec<Option<f64>> = rows.iter().map(|r| r[c].as_f64()).collect();
            chart = if over_time {
                chart.series(Line::new().name(result.columns[c].as_str()).data(values))
            } else {
                chart.series(Bar::new().name(result.columns[c].as_str()).data(values))
            };
        }
        Some(chart)
    }
}

/// A button that draws a query's result: lines over time, or bars.
#[component]
pub fn ResultChart(result: crate::model::QueryResult) -> impl IntoView {
    let shown = RwSignal::new(false);
    let chartable = result.columns.len() > 1 && !result.rows.is_empty();
    #[cfg(feature = "hydrate")]
    {
        let drawn = StoredValue::new_local(Vec::new());
        Effect::new(move |_| {
            if shown.get() {
                if let Some(chart) = draw::result(&result) {
                    draw::show(drawn, "chart-result", &chart);
                }
            }
        });
    }
    view! {
        <Show when=move || chartable>
            <button type="button" class="chart-button" on:click=move |_| shown.set(true) data-testid="chart-button">
                "Chart it"
            </button>
        </Show>
        <Show when=move || shown.get()>
            <div id="chart-result" class="chart" data-testid="chart-result"></div>
        </Show>
    }
}
