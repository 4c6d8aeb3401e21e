//! The RT adapters against the real RT that `scripts/rt.sh` runs on 127.0.0.1: every scenario
//! runs through REST 2.0 with a token, REST 2.0 with HTTP Basic, and REST 1.0 with
//! `user`/`pass`. Only the paging test creates tickets in the `Support` queue, so it can count
//! them (with `min_id`) while the other tests, which use `General`, run beside it.

// The scenarios are plain async fns shared by several #[tokio::test]s; a failed step panics.
#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use chrono::Utc;
use rt_relay_shared::{
    config::{RtApi, RtAuth},
    rt::{rest1::form::Form, RtClient, RtCreate, RtError, RtQuery, RtTicket},
};
use rt_relay_tests::{
    fault_proxy::{Fault, FaultProxy, Match},
    rt::{
        config_at, password_auth, rt_base_url, rt_client, rt_config, token_auth,
        wrong_password_auth, wrong_token_auth,
    },
};

/// Bound on one whole scenario (each RT request is bounded by the client's 10 s).
const SCENARIO_BOUND: Duration = Duration::from_secs(180);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Adapter {
    Rest2Token,
    Rest2Basic,
    Rest1Password,
}

impl Adapter {
    const ALL: [Adapter; 3] = [Adapter::Rest2Token, Adapter::Rest2Basic, Adapter::Rest1Password];

    fn api(self) -> RtApi {
        match self {
            Adapter::Rest2Token | Adapter::Rest2Basic => RtApi::Rest2,
            Adapter::Rest1Password => RtApi::Rest1,
        }
    }

    fn auth(self) -> RtAuth {
        match self {
            Adapter::Rest2Token => token_auth(),
            Adapter::Rest2Basic | Adapter::Rest1Password => password_auth(),
        }
    }

    fn wrong_auth(self) -> Vec<RtAuth> {
        match self {
            Adapter::Rest2Token => vec![wrong_token_auth()],
            Adapter::Rest2Basic | Adapter::Rest1Password => vec![wrong_password_auth()],
        }
    }

    fn client(self) -> Arc<dyn RtClient> {
        rt_client(&rt_config(self.api(), self.auth()))
    }
}

/// Runs `scenario` for one adapter within [`SCENARIO_BOUND`].
async fn bounded<F: std::future::Future<Output = ()>>(scenario: F) {
    tokio::time::timeout(SCENARIO_BOUND, scenario)
        .await
        .expect("scenario finished within its bound");
}

/// Generates one test per adapter: `<scenario>::rest2_token`, `::rest2_basic`, `::rest1_password`.
macro_rules! for_each_adapter {
    ($scenario:ident) => {
        mod $scenario {
            #[tokio::test]
            async fn rest2_token() {
                super::bounded(super::$scenario(super::Adapter::Rest2Token)).await
            }
            #[tokio::test]
            async fn rest2_basic() {
                super::bounded(super::$scenario(super::Adapter::Rest2Basic)).await
            }
            #[tokio::test]
            async fn rest1_password() {
                super::bounded(super::$scenario(super::Adapter::Rest1Password)).await
            }
        }
    };
}

fn marker() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..12].to_owned()
}

/// Reads `id` through every adapter and checks they all report the same ticket.
async fn read_everywhere(id: u64) -> RtTicket {
    let mut seen: Vec<(Adapter, RtTicket)> = Vec::new();
    for adapter in Adapter::ALL {
        let t =
            adapter.client().get(id).await.unwrap_or_else(|e| panic!("{adapter:?} get {id}: {e}"));
        seen.push((adapter, t));
    }
    let (_, first) = &seen[0];
    for (adapter, t) in &seen[1..] {
        assert_eq!(t, first, "{adapter:?} reads ticket {id} as {:?} reads it", seen[0].0);
    }
    first.clone()
}

// --- create, then get -------------------------------------------------------------------

async fn create_then_get(adapter: Adapter) {
    let rt = adapter.client();
    let m = marker();
    let requestor = format!("req-{m}@example.com");
    let new = RtCreate {
        queue: "General".into(),
        subject: format!("Problema no Login {m}"),
        content: "Usuário não consegue entrar.\n  Passos:\n  1. abrir\n".into(),
        requestor: Some(requestor.clone()),
    };
    let before = Utc::now();
    let id = rt.create(&new).await.unwrap_or_else(|e| panic!("{adapter:?} create: {e}"));
    let t = rt.get(id).await.unwrap_or_else(|e| panic!("{adapter:?} get: {e}"));
    assert_eq!(t.id, id);
    assert_eq!(t.subject, new.subject);
    assert_eq!(t.queue, "General");
    assert_eq!(t.status, "new");
    assert_eq!(t.owner, "Nobody");
    assert_eq!(t.priority, 0);
    assert_eq!(t.requestors, vec![requestor]);
    let skew = chrono::Duration::seconds(120);
    assert!(
        t.created > before - skew && t.created < Utc::now() + skew,
        "created {} near {before}",
        t.created
    );
    assert_eq!(rt.description(id).await.unwrap(), new.content, "{adapter:?} description");
    assert!(
        rt.ticket_url(id).ends_with(&format!("Ticket/Display.html?id={id}")),
        "{}",
        rt.ticket_url(id)
    );
    // Every adapter, whichever created it, reads the same ticket and description.
    assert_eq!(read_everywhere(id).await, t);
    for other in Adapter::ALL {
        assert_eq!(
            other.client().description(id).await.unwrap(),
            new.content,
            "{other:?} reads {adapter:?}'s description"
        );
    }
}
for_each_adapter!(create_then_get);

// --- missing tickets ----------------------------------------------------------------------

async fn missing_ticket_is_not_found(adapter: Adapter) {
    let rt = adapter.client();
    let id = 987_654_321;
    assert!(matches!(rt.get(id).await, Err(RtError::NotFound)), "{adapter:?} get");
    assert!(matches!(rt.description(id).await, Err(RtError::NotFound)), "{adapter:?} description");
}
for_each_adapter!(missing_ticket_is_not_found);

// --- init warm-up -------------------------------------------------------------------------

/// The warm-up call every adapter makes at init answers; REST 2.0's fills the queue names, so
/// the first ticket read after it is one request to RT, not two (a fresh adapter asks for
/// the queue: the count below is not vacuous).
async fn warm_up_fills_the_queue_names(adapter: Adapter) {
    let id = adapter
        .client()
        .create(&RtCreate::new("General", format!("warm-up {}", marker()), "d"))
        .await
        .unwrap_or_else(|e| panic!("{adapter:?} create: {e}"));
    let queue_reads =
        |proxy: &FaultProxy| proxy.count(Match::MethodPath("GET", "/REST/2.0/queue/"));
    // A cold adapter: the read asks RT for the queue's name (REST 2.0).
    let (proxy, cold) = behind_proxy(adapter).await;
    let reads = queue_reads(&proxy);
    assert_eq!(cold.get(id).await.unwrap().queue, "General");
    let rest2 = adapter.api() == RtApi::Rest2;
    assert_eq!(reads.get(), usize::from(rest2), "{adapter:?}: a cold read of the queue");
    // A warmed adapter: the warm-up answers, and the read is the ticket alone.
    let (proxy, warmed) = behind_proxy(adapter).await;
    let said = warmed.warm_up().await.unwrap_or_else(|e| panic!("{adapter:?} warm-up: {e}"));
    if rest2 {
        assert!(said.ends_with("queue names") && !said.starts_with("0 "), "{adapter:?}: {said}");
    }
    let reads = queue_reads(&proxy);
    let forwarded = proxy.forwarded();
    assert_eq!(warmed.get(id).await.unwrap().queue, "General");
    assert_eq!(reads.get(), 0, "{adapter:?}: the queue name came from the warm-up");
    if rest2 {
        assert_eq!(proxy.forwarded() - forwarded, 1, "{adapter:?}: one request to RT");
    }
}
for_each_adapter!(warm_up_fills_the_queue_names);

// --- paging -------------------------------------------------------------------------------

/// One test for all adapters: it owns the `Support` queue while it runs.
#[tokio::test]
async fn list_pages_through_more_tickets_than_one_page_holds() {
    bounded(async {
        let m = marker();
        let mut created = Vec::new();
        for (n, adapter) in Adapter::ALL.iter().cycle().take(7).enumerate() {
            let subject = format!("paging {m} #{n}");
            let id = adapter
                .client()
                .create(&RtCreate::new("Support", &subject, "page me\n"))
                .await
                .unwrap();
            created.push((id, subject));
        }
        let min_id = created[0].0;
        let newest_first: Vec<u64> = created.iter().rev().map(|(id, _)| *id).collect();
        let query = RtQuery {
            queue: Some("Support".into()),
            status: Some("new".into()),
            min_id: Some(min_id),
            subject: None,
        };
        for adapter in Adapter::ALL {
            let rt = adapter.client();
            let mut listed = Vec::new();
            for (page, (size, more)) in [(3, true), (3, true), (1, false)].into_iter().enumerate() {
                let page = page as u32 + 1;
                let p = rt
                    .list(&query, page, 3)
                    .await
                    .unwrap_or_else(|e| panic!("{adapter:?} page {page}: {e}"));
                assert_eq!(
                    (p.page, p.total, p.tickets.len(), p.has_more),
                    (page, 7, size, more),
                    "{adapter:?} page {page}"
                );
                for t in &p.tickets {
                    let subject =
                        &created.iter().find(|(id, _)| *id == t.id).expect("one of ours").1;
                    assert_eq!(
                        (&t.subject, t.queue.as_str(), t.status.as_str()),
                        (subject, "Support", "new")
                    );
                }
                listed.extend(p.tickets.iter().map(|t| t.id));
            }
            assert_eq!(listed, newest_first, "{adapter:?} lists every ticket once, newest first");
            let beyond = rt.list(&query, 4, 3).await.unwrap();
            assert_eq!(
                (beyond.tickets.len(), beyond.total, beyond.has_more),
                (0, 7, false),
                "{adapter:?} past the end"
            );
            // A list page holds the same tickets `get` returns.
            let first = rt.list(&query, 1, 100).await.unwrap();
            assert_eq!(first.tickets.len(), 7);
            assert_eq!(
                first.tickets[0],
                rt.get(first.tickets[0].id).await.unwrap(),
                "{adapter:?} list vs get"
            );
            // Quotes and backslashes in a value stay inside the TicketSQL string.
            let odd = RtQuery {
                queue: Some(r"No'Such\Queue' OR id > '0".into()),
                status: None,
                min_id: Some(min_id),
                subject: None,
            };
            let none =
                rt.list(&odd, 1, 3).await.unwrap_or_else(|e| panic!("{adapter:?} odd queue: {e}"));
            assert_eq!(
                (none.total, none.tickets.len(), none.has_more),
                (0, 0, false),
                "{adapter:?}"
            );
        }
    })
    .await
}

// --- credentials and queues ---------------------------------------------------------------

async fn wrong_credentials_are_unauthenticated(adapter: Adapter) {
    for auth in adapter.wrong_auth() {
        let rt = rt_client(&rt_config(adapter.api(), auth));
        let created = rt.create(&RtCreate::new("General", "must not exist", "x")).await;
        assert!(
            matches!(created, Err(RtError::Unauthenticated)),
            "{adapter:?} create: {created:?}"
        );
        assert!(matches!(rt.get(1).await, Err(RtError::Unauthenticated)), "{adapter:?} get");
        assert!(
            matches!(rt.description(1).await, Err(RtError::Unauthenticated)),
            "{adapter:?} description"
        );
        let listed = rt.list(&RtQuery::default(), 1, 3).await;
        assert!(matches!(listed, Err(RtError::Unauthenticated)), "{adapter:?} list: {listed:?}");
    }
}
for_each_adapter!(wrong_credentials_are_unauthenticated);

async fn unknown_queue_is_refused(adapter: Adapter) {
    let rt = adapter.client();
    let queue = format!("No Such Queue {}", marker());
    match rt.create(&RtCreate::new(&queue, "nowhere", "x")).await {
        Err(RtError::Forbidden(msg)) | Err(RtError::Rejected(msg)) => {
            assert!(!msg.is_empty() && msg.chars().count() <= 301, "{adapter:?}: {msg:?}");
        }
        other => panic!("{adapter:?}: unknown queue gave {other:?}"),
    }
}
for_each_adapter!(unknown_queue_is_refused);

// --- transport failures -------------------------------------------------------------------

async fn closed_port_is_unreachable_quickly(adapter: Adapter) {
    let port = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let config = config_at(
        adapter.api(),
        adapter.auth(),
        &format!("http://127.0.0.1:{port}/"),
        Duration::from_secs(5),
    );
    let rt = rt_client(&config);
    let started = Instant::now();
    let got = rt.get(1).await;
    assert!(matches!(got, Err(RtError::Unreachable(_))), "{adapter:?}: {got:?}");
    let created = rt.create(&RtCreate::new("General", "t", "d")).await;
    assert!(matches!(created, Err(RtError::Unreachable(_))), "{adapter:?}: {created:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "refused connections fail fast: {:?}",
        started.elapsed()
    );
}
for_each_adapter!(closed_port_is_unreachable_quickly);

async fn silent_server_times_out_within_the_bound(adapter: Adapter) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accepts and never answers; the connections stay open until the test ends.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = listener.accept().await {
            held.push(socket);
        }
    });
    let bound = Duration::from_millis(500);
    let rt =
        rt_client(&config_at(adapter.api(), adapter.auth(), &format!("http://{addr}/"), bound));
    for call in ["create", "get", "list"] {
        let started = Instant::now();
        let result = match call {
            "create" => rt.create(&RtCreate::new("General", "t", "d")).await.map(|_| ()),
            "get" => rt.get(1).await.map(|_| ()),
            _ => rt.list(&RtQuery::default(), 1, 3).await.map(|_| ()),
        };
        let took = started.elapsed();
        assert!(
            matches!(result, Err(RtError::Timeout(d)) if d == bound),
            "{adapter:?} {call}: {result:?}"
        );
        assert!(took < Duration::from_secs(5), "{adapter:?} {call} returned after {took:?}");
    }
    silent.abort();
}
for_each_adapter!(silent_server_times_out_within_the_bound);

// --- what RT's refusals pass on --------------------------------------------------------------

/// Text that must never reach a caller: it stands for whatever a web server, a proxy or a
/// Perl error page in front of RT might put in a body.
const LEAK: &str = "LEAK-7f3a /opt/rt5/lib/RT.pm DBI password=hunter2";

/// An adapter reaching RT through a fault proxy that answers every request itself.
async fn behind_proxy(adapter: Adapter) -> (FaultProxy, Arc<dyn RtClient>) {
    let proxy = FaultProxy::start(rt_base_url().as_str()).await;
    let base = format!("{}/", proxy.url());
    let rt = rt_client(&config_at(adapter.api(), adapter.auth(), &base, Duration::from_secs(10)));
    (proxy, rt)
}

/// Runs create, get and list; every one must fail.
async fn every_call_fails(rt: &dyn RtClient) -> Vec<RtError> {
    let created = rt.create(&RtCreate::new("General", "t", "d")).await.map(|_| ());
    let got = rt.get(7).await.map(|_| ());
    let listed = rt.list(&RtQuery::default(), 1, 3).await.map(|_| ());
    [created, got, listed].into_iter().map(|r| r.expect_err("RT refused")).collect()
}

/// Answers that are not RT's own message (HTML, plain text, JSON of another shape, the form
/// RT echoes under a REST 1.0 refusal) are reduced to a fixed text or RT's status text; RT's
/// own words, in any script, pass on.
async fn refusals_carry_only_rt_s_own_message(adapter: Adapter) {
    let (proxy, rt) = behind_proxy(adapter).await;
    let respond =
        |status, content_type, body: String| Fault::Respond { status, content_type, body };
    let cases: Vec<(Fault, &str)> = match adapter.api() {
        RtApi::Rest2 => vec![
            (
                respond(400, "text/html", format!("<html><body>{LEAK}</body></html>")),
                "RT rejected the request: Bad Request",
            ),
            (respond(403, "text/plain", LEAK.into()), "RT refused the operation: Forbidden"),
            (
                respond(422, "application/json", format!(r#"{{"error":"{LEAK}"}}"#)),
                "RT rejected the request: Unprocessable Entity",
            ),
            (
                respond(
                    400,
                    "application/json",
                    r#"{"message":"Requête invalide : ção 日本"}"#.into(),
                ),
                "RT rejected the request: Requête invalide : ção 日本",
            ),
        ],
        RtApi::Rest1 => vec![
            (
                respond(
                    200,
                    "text/plain",
                    format!(
                        "RT/5.0.3 409 Syntax Error\n\n# Could not create ticket.\n\n\
                         id: ticket/new\nQueue: General\nText:\n {LEAK}\n"
                    ),
                ),
                "RT rejected the request: Could not create ticket.",
            ),
            (
                respond(
                    200,
                    "text/plain",
                    format!("RT/5.0.3 400 Bad request\n\nSubject: {LEAK}\n"),
                ),
                "RT rejected the request: Bad request",
            ),
            (
                respond(
                    200,
                    "text/plain",
                    "RT/5.0.3 400 Bad request\n\nConsulta inválida: 'ção'\n".into(),
                ),
                "RT rejected the request: Consulta inválida: 'ção'",
            ),
            (
                respond(403, "text/html", format!("<html>{LEAK}</html>")),
                "RT refused the operation: RT's web server refused the request",
            ),
        ],
    };
    for (fault, expected) in cases {
        proxy.set(fault.clone());
        for err in every_call_fails(rt.as_ref()).await {
            assert_eq!(err.to_string(), expected, "{adapter:?} {fault:?}");
        }
    }
    // A body RT's API never sends is not read as a message at all (a 502 for the client).
    proxy.set(respond(400, "text/html", format!("<html>{LEAK}</html>")));
    for err in every_call_fails(rt.as_ref()).await {
        assert!(!err.to_string().contains("LEAK-7f3a"), "{adapter:?}: {err}");
    }
    assert!(proxy.faulted() >= 15, "every call was answered by the proxy");
    assert_eq!(proxy.forwarded(), 0);
}
for_each_adapter!(refusals_carry_only_rt_s_own_message);

/// A REST 1.0 answer with multi-byte field names and values (which once made the form parser
/// slice a key inside a character and panic) is read like any other.
#[tokio::test]
async fn rest1_reads_answers_with_multi_byte_field_names() {
    bounded(async {
        let (proxy, rt) = behind_proxy(Adapter::Rest1Password).await;
        let form = "RT/5.0.3 200 Ok\n\nid: ticket/7\na日b: x\naaéx: y\nCé.{z}: w\n\
                    Queue: Suporte técnico\nOwner: Nobody\nSubject: 日本語の件名 ção\nStatus: new\n\
                    Priority: 0\nRequestors: ção@example.com\nCreated: Sat Nov 28 23:58:04 2026\n";
        proxy.set(Fault::Respond { status: 200, content_type: "text/plain", body: form.into() });
        let t = rt.get(7).await.unwrap();
        assert_eq!(
            (t.id, t.subject.as_str(), t.queue.as_str(), t.status.as_str()),
            (7, "日本語の件名 ção", "Suporte técnico", "new")
        );
        assert_eq!(t.requestors, vec!["ção@example.com".to_owned()]);
        assert_eq!(t.created.to_rfc3339(), "2026-11-28T23:58:04+00:00");
        assert!(proxy.faulted() >= 1);
    })
    .await
}

// --- adversarial text -----------------------------------------------------------------------

/// Titles the model accepts (one line, trimmed, at most 200 bytes) that look like form syntax.
fn adversarial_titles() -> Vec<String> {
    vec![
        "Owner: root".into(),
        "Status: resolved Queue: Support Priority: 99".into(),
        "--".into(),
        "# not a comment".into(),
        "id: ticket/1".into(),
        "Título com acentuação — ünïcödé 🎫".into(),
        "é".repeat(100),                  // exactly 200 bytes, 100 characters
        format!("{}ab", "日".repeat(66)), // exactly 200 bytes, 3-byte characters
        "Subject: x, Requestor: mallory@example.com".into(),
        "quote ' and \" and back\\slash".into(),
    ]
}

/// Descriptions that break naive form encodings. Those REST 1.0 cannot carry are listed
/// in [`rest1_refuses`].
fn adversarial_descriptions() -> Vec<&'static str> {
    vec![
        "Owner: root\nStatus: resolved\nQueue: Support\nPriority: 99\n",
        "--\nOwner: root\n--\n",
        "  indented\n  block\n\nOwner: root\n--\nlast  \n\n",
        "\tTabbed\n\tblock",
        "    uniformly indented\n    code block\n",
        "\n\nleading blank lines",
        "trailing blank lines\n\n\n",
        "trailing spaces   \nand tabs\t\t\n",
        "CRLF line\r\nends\r\n\r\n",
        "lone\rcarriage return\r",
        "Ação, ünïcödé, 日本語, emoji 🎫\n",
        "# comment-looking\nid: ticket/1\nText: more\n",
        "Subject: changed\nRequestor: mallory@example.com\nCc: mallory@example.com\nAdminCc: root\n",
        "\u{a0}non-breaking space first\n\u{3000}ideographic space",
        "   ",
        "",
        "0",
        "\n",
    ]
}

/// What an adapter refuses because RT would not store it unchanged: through REST 1.0 a
/// first line that is empty (`rest1::form`) and the text "0" (false to RT's ticket/new
/// handler); through REST 2.0 any CRLF, which RT rewrites as LF.
fn refused_by(adapter: Adapter, description: &str) -> bool {
    match adapter.api() {
        RtApi::Rest1 => description.starts_with('\n') || description == "0",
        RtApi::Rest2 => description.contains("\r\n"),
    }
}

async fn adversarial_text_round_trips(adapter: Adapter) {
    let rt = adapter.client();
    let m = marker();
    let titles = adversarial_titles();
    for (n, description) in adversarial_descriptions().into_iter().enumerate() {
        let title =
            if n < titles.len() { titles[n].clone() } else { format!("adversarial {m} #{n}") };
        let result = rt.create(&RtCreate::new("General", &title, description)).await;
        if refused_by(adapter, description) {
            assert!(
                matches!(result, Err(RtError::Rejected(_))),
                "{adapter:?} refuses {description:?}: {result:?}"
            );
            continue;
        }
        let id = result.unwrap_or_else(|e| panic!("{adapter:?} create {description:?}: {e}"));
        let t = read_everywhere(id).await;
        assert_eq!(t.subject, title, "{adapter:?} subject of {description:?}");
        assert_eq!(
            (t.owner.as_str(), t.status.as_str(), t.queue.as_str(), t.priority),
            ("Nobody", "new", "General", 0),
            "{adapter:?}: no field changed by {description:?}"
        );
        assert!(
            t.requestors.is_empty(),
            "{adapter:?}: no requestor added by {description:?}: {:?}",
            t.requestors
        );
        for reader in Adapter::ALL {
            let got = reader.client().description(id).await.unwrap();
            assert_eq!(
                got, description,
                "{reader:?} reads {adapter:?}'s description byte for byte"
            );
        }
    }
}
for_each_adapter!(adversarial_text_round_trips);

// --- the REST 1.0 encoder against RT's own parser ------------------------------------------

/// A small deterministic generator (xorshift), so failures reproduce.
struct Xorshift(u64);

impl Xorshift {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// Feeds thousands of generated texts, encoded by `rest1::form`, to RT 5.0.3's own
/// `form_parse` (Perl, from the installed RT) and checks each comes back exactly, as the
/// only field besides the ones the encoder wrote.
#[test]
fn rest1_forms_survive_rts_own_form_parse() {
    const RT_LIB: &str = "/usr/share/request-tracker5/lib";
    assert!(
        std::path::Path::new(RT_LIB).join("RT/Interface/REST.pm").exists(),
        "RT is not installed here: run make test (scripts/test.sh), which installs and starts RT"
    );
    let pieces = [
        " ",
        "  ",
        "\t",
        "\n",
        "\n",
        "\n",
        "\r",
        "\r\n",
        "--",
        "#",
        ":",
        "Owner: root",
        "Status: resolved",
        "a",
        "word",
        "é",
        "日本",
        "\u{a0}",
        "\u{3000}",
        "\u{2028}",
        "\u{b}",
        "\u{c}",
        "0",
        ",",
        "'",
        "\"",
        "\\",
        "CF.{x}: y",
    ];
    let mut rng = Xorshift(0x9e37_79b9_7f4a_7c15);
    let mut texts: Vec<String> = Vec::new();
    while texts.len() < 3000 {
        let len = (rng.next() % 12) as usize;
        let text: String =
            (0..len).map(|_| pieces[(rng.next() % pieces.len() as u64) as usize]).collect();
        if !text.starts_with('\n') {
            texts.push(text);
        }
    }
    let forms: Vec<String> = texts
        .iter()
        .map(|text| {
            let mut form = Form::new();
            form.line("id", "ticket/new").unwrap();
            form.line("Queue", "General").unwrap();
            form.line("Subject", "Owner: root -- x").unwrap();
            form.text("Text", text).unwrap();
            form.finish()
        })
        .collect();
    let script = r#"
        use strict; use warnings; use RT::Interface::REST; use JSON::PP;
        local $/; my $in = JSON::PP->new->utf8->decode(<STDIN>);
        my @out = map { [ map { [ $_->[1], $_->[2] ] } @{ form_parse($_) } ] } @$in;
        print JSON::PP->new->utf8->canonical->encode(\@out);
    "#;
    let mut child = std::process::Command::new("perl")
        .arg(format!("-I{RT_LIB}"))
        .arg("-e")
        .arg(script)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("perl runs");
    let input = serde_json::to_vec(&forms).unwrap();
    let mut stdin = child.stdin.take().unwrap();
    let writer = std::thread::spawn(move || std::io::Write::write_all(&mut stdin, &input));
    let output = child.wait_with_output().expect("perl finishes");
    writer.join().unwrap().unwrap();
    assert!(output.status.success(), "perl failed");
    /// One parsed form as the script prints it: the field order and the fields.
    type PerlForm = (Vec<String>, serde_json::Map<String, serde_json::Value>);
    let parsed: Vec<Vec<PerlForm>> = serde_json::from_slice(&output.stdout).expect("perl's JSON");
    assert_eq!(parsed.len(), texts.len());
    for (text, forms) in texts.iter().zip(parsed) {
        assert_eq!(forms.len(), 1, "one form for {text:?}");
        let (order, values) = &forms[0];
        assert_eq!(order, &["id", "Queue", "Subject", "Text"], "no field added for {text:?}");
        assert_eq!(values["Subject"], "Owner: root -- x");
        assert_eq!(
            values["Text"].as_str(),
            Some(text.as_str()),
            "RT's form_parse returns {text:?} exactly"
        );
    }
}
