//! A `User-Agent` header → the browser, operating system and kind of device it names, and
//! whether the client is a bot, by woothee's dataset (the one shared by its Ruby, Python, Perl
//! and Java ports, used by Fluentd's and Embulk's filters).
//!
//! A site's traffic comes from a few thousand distinct agents, so each thread keeps the
//! answers for the agents it saw last: an agent is parsed once, then found by its hash.
//! A producer that classified its clients itself (an ECS `user_agent.name`, a `browser`
//! member) keeps its own answer; lakepulse fills in only events that carry none.

use crate::model::LogEvent;
use lru::LruCache;
use std::cell::RefCell;
use std::num::NonZeroUsize;
use woothee::parser::Parser;

/// Agents are read by at most their first bytes: real ones are a few hundred, and a hostile
/// 100 KB one must cost neither the cache's memory nor the parser's time.
const READ_BYTES: usize = 512;
/// Distinct agents remembered per thread: at most 2 MB of agents, more than a busy site sends.
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(4096).unwrap();

/// What a user agent says about its client; a part woothee cannot name is `None`.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Client {
    /// The browser or crawler: `Chrome`, `Firefox`, `Googlebot`.
    pub browser: Option<String>,
    /// The operating system: `Windows 10`, `Mac OSX`, `Android`, `iPhone`.
    pub os: Option<String>,
    /// The kind of device, as [`device_family`] names woothee's categories.
    pub device: Option<String>,
    /// A crawler, or a program that calls itself a bot or spider.
    pub bot: bool,
}

thread_local! {
    static REMEMBERED_CLIENTS: RefCell<LruCache<Box<str>, Client>> =
        RefCell::new(LruCache::new(REMEMBERED));
    static PARSER: Parser = Parser::new();
}

/// Reads an agent, from this thread's memory when it was read before.
pub fn classify(agent: &str) -> Client {
    let agent = &agent[..agent.floor_char_boundary(READ_BYTES)];
    REMEMBERED_CLIENTS.with_borrow_mut(|remembered| {
        if let Some(client) = remembered.get(agent) {
            return client.clone();
        }
        let client = parse(agent);
        remembered.put(agent.into(), client.clone());
        client
    })
}

fn parse(agent: &str) -> Client {
    let parsed = PARSER
        .with(|parser| parser.parse(agent))
        .unwrap_or_default();
    let known = |value: &str| {
        (!value.is_empty() && value != woothee::woothee::VALUE_UNKNOWN).then(|| value.to_owned())
    };
    let device = device_family(parsed.category);
    Client {
        browser: known(parsed.name),
        os: known(parsed.os),
        bot: device == Some(BOT) || calls_itself_a_bot(agent),
        device: device.map(str::to_owned),
    }
}

const BOT: &str = "Bot";

/// Woothee's categories as a dashboard names them.
pub fn device_family(category: &str) -> Option<&'static str> {
    match category {
        "pc" => Some("Desktop"),
        "smartphone" => Some("Smartphone"),
        "mobilephone" => Some("Feature phone"),
        "appliance" => Some("Appliance"),
        "crawler" => Some(BOT),
        "misc" => Some("Other"),
        _ => None,
    }
}

/// Crawlers newer than woothee's dataset (GPTBot, AhrefsBot, Bytespider) still say what they
/// are, as robots are asked to.
fn calls_itself_a_bot(agent: &str) -> bool {
    let agent = agent.to_ascii_lowercase();
    ["bot", "crawl", "spider", "slurp"]
        .iter()
        .any(|word| agent.contains(word))
}

/// Fills in the client's browser, OS, device and bot flag from its user agent, unless the
/// producer gave any of them.
pub(super) fn add_client(event: &mut LogEvent) {
    let given = event.browser.is_some()
        || event.os.is_some()
        || event.device.is_some()
        || event.bot.is_some();
    let Some(agent) = event.user_agent.as_deref().filter(|_| !given) else {
        return;
    };
    let client = classify(agent);
    event.browser = client.browser;
    event.os = client.os;
    event.device = client.device;
    event.bot = Some(client.bot);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(agent: &str) -> (Option<String>, Option<String>, Option<String>, bool) {
        let client = classify(agent);
        (client.browser, client.os, client.device, client.bot)
    }

    fn named(
        browser: &str,
        os: &str,
        device: &str,
        bot: bool,
    ) -> (Option<String>, Option<String>, Option<String>, bool) {
        let name = |text: &str| (!text.is_empty()).then(|| text.to_owned());
        (name(browser), name(os), name(device), bot)
    }

    #[test]
    fn real_agents_name_their_browser_system_and_device() {
        let cases = [
            ("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36", named("Chrome", "Windows 10", "Desktop", false)),
            ("Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Mobile/15E148 Safari/604.1", named("Safari", "iPhone", "Smartphone", false)),
            ("Mozilla/5.0 (X11; Ubuntu; Linux x86_64; rv:133.0) Gecko/20100101 Firefox/133.0", named("Firefox", "Linux", "Desktop", false)),
            ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", named("Googlebot", "", "Bot", true)),
            ("Mozilla/5.0 AppleWebKit/537.36 (KHTML, like Gecko; compatible; GPTBot/1.2; +https://openai.com/gptbot)", named("misc crawler", "", "Bot", true)),
            ("curl/8.5.0", named("HTTP Library", "", "Other", false)),
            ("", named("", "", "", false)),
        ];
        for (agent, expected) in cases {
            assert_eq!(read(agent), expected, "{agent}");
            assert_eq!(read(agent), expected, "{agent}, remembered");
        }
    }

    #[test]
    fn a_huge_agent_is_read_by_its_start_and_remembered_small() {
        let agent = format!(
            "Mozilla/5.0 (compatible; Googlebot/2.1) {}",
            "é".repeat(50_000)
        );
        assert!(classify(&agent).bot);
        REMEMBERED_CLIENTS.with_borrow(|remembered| {
            assert!(remembered
                .iter()
                .all(|(agent, _)| agent.len() <= READ_BYTES));
        });
    }
}
