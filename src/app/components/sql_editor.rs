//! A SQL textarea with syntax colours drawn underneath it; Ctrl/Cmd+Enter runs the query.
//! While a word is typed it offers the columns, tables, functions and keywords it may become:
//! ↑/↓ choose, Tab or Enter take one, Esc closes the list.

use crate::app::completion::{byte_offset, suggest, utf16_offset, word_at, Word};
use crate::app::sql_highlight::tokenize;
use leptos::html;
use leptos::prelude::*;

/// Suggestions shown at most.
const SUGGESTIONS: usize = 8;

/// The editor's text and its caret, as a byte offset into it.
fn text_and_caret(area: &web_sys::HtmlTextAreaElement) -> (String, usize) {
    let sql = area.value();
    let caret = area
        .selection_start()
        .ok()
        .flatten()
        .map_or(sql.len(), |c| byte_offset(&sql, c as usize));
    (sql, caret)
}

/// The editor; `vocabulary` is what it completes words to (nothing without it).
#[component]
pub fn SqlEditor(
    initial: String,
    #[prop(optional)] vocabulary: Option<Signal<Vec<Word>>>,
) -> impl IntoView {
    let text = RwSignal::new(initial.clone());
    let colours = NodeRef::<html::Pre>::new();
    let area = NodeRef::<html::Textarea>::new();
    // The words offered, the one chosen, and where the word they would replace starts.
    let suggestions = RwSignal::new(Vec::<Word>::new());
    let chosen = RwSignal::new(0usize);
    let word_start = StoredValue::new(0usize);
    let offer = move |area: &web_sys::HtmlTextAreaElement| {
        let (sql, caret) = text_and_caret(area);
        let offered = match (vocabulary, word_at(&sql, caret)) {
            (Some(vocabulary), Some((start, typed))) => {
                word_start.set_value(start);
                vocabulary.with_untracked(|words| {
                    suggest(words, typed, SUGGESTIONS)
                        .into_iter()
                        .cloned()
                        .collect()
                })
            }
            _ => Vec::new(),
        };
        chosen.set(0);
        suggestions.set(offered);
    };
    let take = move |index: usize| {
        let (Some(area), Some(word)) = (
            area.get_untracked(),
            suggestions.with_untracked(|s| s.get(index).cloned()),
        ) else {
            return;
        };
        let (sql, caret) = text_and_caret(&area);
        let start = word_start.get_value().min(caret);
        let completed = format!("{}{}{}", &sql[..start], word.text, &sql[caret..]);
        let after = utf16_offset(&completed, start + word.text.len()) as u32;
        area.set_value(&completed);
        let _ = area.set_selection_range(after, after);
        text.set(completed);
        suggestions.set(Vec::new());
    };
    // What was typed before the page hydrated is the user's query: colour it, keep it.
    Effect::new(move |_| {
        if let Some(area) = area.get() {
            text.set(area.value());
        }
    });
    let highlighted = move || {
        text.with(|sql| {
            let mut pieces: Vec<_> = tokenize(sql)
                .into_iter()
                .map(|(token, piece)| view! { <span class=token.class()>{piece.to_owned()}</span> })
                .collect();
            // A trailing newline needs a character after it to take up its line.
            pieces.push(view! { <span class="">{" ".to_owned()}</span> });
            pieces
        })
    };
    view! {
        <div class="sql-editor">
            <pre node_ref=colours aria-hidden="true">{highlighted}</pre>
            <textarea
                name="sql"
                aria-label="SQL query"
                spellcheck="false"
                autocomplete="off"
                data-testid="sql-input"
                node_ref=area
                on:input=move |ev| {
                    text.set(event_target_value(&ev));
                    offer(&event_target::<web_sys::HtmlTextAreaElement>(&ev));
                }
                on:blur=move |_| suggestions.set(Vec::new())
                on:scroll=move |ev| {
                    if let Some(pre) = colours.get() {
                        let area = event_target::<web_sys::HtmlTextAreaElement>(&ev);
                        pre.set_scroll_top(area.scroll_top());
                        pre.set_scroll_left(area.scroll_left());
                    }
                }
                on:keydown=move |ev| {
                    let offered = suggestions.with_untracked(Vec::len);
                    let plain = !(ev.ctrl_key() || ev.meta_key() || ev.alt_key());
                    if offered > 0 && plain {
                        let handled = match ev.key().as_str() {
                            "ArrowDown" => {
                                chosen.update(|c| *c = (*c + 1) % offered);
                                true
                            }
                            "ArrowUp" => {
                                chosen.update(|c| *c = (*c + offered - 1) % offered);
                                true
                            }
                            "Tab" | "Enter" => {
                                take(chosen.get_untracked());
                                true
                            }
                            "Escape" => {
                                suggestions.set(Vec::new());
                                true
                            }
                            _ => false,
                        };
                        if handled {
                            ev.prevent_default();
                            return;
                        }
                    }
                    if ev.key() == "Enter" && (ev.ctrl_key() || ev.meta_key()) {
                        ev.prevent_default();
                        let area = event_target::<web_sys::HtmlTextAreaElement>(&ev);
                        if let Some(form) = area.form() {
                            let _ = form.request_submit();
                        }
                    }
                }
            >
                {initial}
            </textarea>
            <Show when=move || suggestions.with(|s| !s.is_empty())>
                <ul class="completions" role="listbox" aria-label="Completions" data-testid="completions">
                    {move || {
                        suggestions
                            .get()
                            .into_iter()
                            .enumerate()
                            .map(|(index, word)| {
                                view! {
                                    <li
                                        role="option"
                                        aria-selected=move || (chosen.get() == index).to_string()
                                        // Before the textarea loses focus to the click.
                                        on:mousedown=move |ev| {
                                            ev.prevent_default();
                                            take(index);
                                        }
                                    >
                                        <code>{word.text}</code>
                                        <span class="kind">{word.kind.label()}</span>
                                    </li>
                                }
                            })
                            .collect_view()
                    }}
                </ul>
            </Show>
        </div>
    }
}
