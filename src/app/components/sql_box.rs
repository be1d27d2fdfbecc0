//! SQL over the lake, through a server function; works as a plain form before hydration too.

use crate::app::components::result_table::ResultTable;
use crate::app::server_fns::RunQuery;
use leptos::form::ActionForm;
use leptos::prelude::*;

const STARTER_QUERY: &str =
    "SELECT status, count(*) AS requests, avg(response_time_ms) AS avg_ms\nFROM logs\nGROUP BY status\nORDER BY requests DESC";

#[component]
pub fn SqlBox() -> impl IntoView {
    let run = ServerAction::<RunQuery>::new();
    view! {
        <section class="panel sql" aria-label="SQL">
            <h2>"SQL over the lake " <a class="more" href="/query">"open the workbench →"</a></h2>
            <ActionForm action=run>
                <label for="sql" class="visually-hidden">"SQL query"</label>
                <textarea id="sql" name="sql" rows="5" spellcheck="false" data-testid="sql-input">
                    {STARTER_QUERY}
                </textarea>
                <button type="submit" data-testid="sql-run">
                    {move || if run.pending().get() { "Running…" } else { "Run" }}
                </button>
            </ActionForm>
            {move || match run.value().get() {
                None => view! { <p class="hint">"Tables: logs, delta_lake.logs"</p> }.into_any(),
                Some(Ok(result)) => view! { <ResultTable result /> }.into_any(),
                Some(Err(error)) => view! { <p class="error" data-testid="sql-error">{error.to_string()}</p> }.into_any(),
            }}
        </section>
    }
}
