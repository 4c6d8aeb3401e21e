//! RT's own events: what a change made in RT (by e-mail, in its web UI, through its REST
//! APIs) means for rt-relay's clients. Pure mapping here ([`classify`], [`notification`]);
//! the use cases that read RT and record are [`ingest`] (shared by both paths), [`sync`]
//! (the scheduled reader of RT's transaction log) and [`webhook`] (the signed call from
//! RT's scrip, verified by [`signature`]). The catalogue is documented in
//! docs/ARCHITECTURE.md ("RT events") and README.md.

use chrono::{DateTime, Utc};

use crate::{
    model::{
        FieldChange, Notification, Ticket, TicketSummary, TICKET_COMMENTED, TICKET_CREATED,
        TICKET_REPLIED, TICKET_STATUS_CHANGED, TICKET_UPDATED,
    },
    rt::{transactions::RtTransaction, RtTicket},
};

pub mod dynamodb;
pub mod ingest;
pub mod memory;
pub mod settings;
pub mod signature;
pub mod store;
pub mod sync;
pub mod webhook;
pub mod wiring;

/// Longest excerpt of a reply or comment a notification carries, in characters.
pub const EXCERPT_CHARS: usize = 200;

/// What one RT transaction means, or nothing for transactions clients are not told about
/// (RT's own e-mail records, watcher and custom field changes, links, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketEvent {
    /// `Create`.
    Created,
    /// `Status` (or `Set` of `Status`).
    StatusChanged(FieldChange),
    /// `Set` of `Queue`, `Subject` or `Priority`; any owner change (`Set`, `Give`, `Take`,
    /// `Untake`, `Steal` of `Owner`).
    Updated(FieldChange),
    /// `Correspond`.
    Replied,
    /// `Comment`.
    Commented,
}

impl TicketEvent {
    /// The notification type.
    pub fn kind(&self) -> &'static str {
        match self {
            TicketEvent::Created => TICKET_CREATED,
            TicketEvent::StatusChanged(_) => TICKET_STATUS_CHANGED,
            TicketEvent::Updated(_) => TICKET_UPDATED,
            TicketEvent::Replied => TICKET_REPLIED,
            TicketEvent::Commented => TICKET_COMMENTED,
        }
    }

    /// Whether the notification carries the message's excerpt.
    pub fn has_message(&self) -> bool {
        matches!(self, TicketEvent::Replied | TicketEvent::Commented)
    }
}

/// RT transaction types that change the owner (RT records `Set` from REST and the other
/// four from the web UI's Take/Give/Steal/Untake).
const OWNER_TYPES: [&str; 5] = ["Set", "Give", "Take", "Untake", "Steal"];

/// Maps one RT transaction to the event clients hear about.
pub fn classify(txn: &RtTransaction) -> Option<TicketEvent> {
    let change = |field: &str| FieldChange {
        field: field.to_owned(),
        old: txn.old_value.clone(),
        new: txn.new_value.clone(),
    };
    match (txn.kind.as_str(), txn.field.as_str()) {
        ("Create", _) => Some(TicketEvent::Created),
        ("Status", _) | ("Set", "Status") => Some(TicketEvent::StatusChanged(change("status"))),
        (kind, "Owner") if OWNER_TYPES.contains(&kind) => {
            Some(TicketEvent::Updated(change("owner")))
        }
        ("Set", "Queue") => Some(TicketEvent::Updated(change("queue"))),
        ("Set", "Subject") => Some(TicketEvent::Updated(change("subject"))),
        ("Set", "Priority") => Some(TicketEvent::Updated(change("priority"))),
        ("Correspond", _) => Some(TicketEvent::Replied),
        ("Comment", _) => Some(TicketEvent::Commented),
        _ => None,
    }
}

/// The notification's id: the one `ticket.created` id for a ticket (the same one
/// `POST /tickets` uses, so the two paths store one), the transaction's otherwise.
pub fn notification_id(txn: &RtTransaction, event: &TicketEvent) -> String {
    match event {
        TicketEvent::Created => Notification::created_id(txn.ticket_id),
        _ => Notification::transaction_id(txn.id),
    }
}

/// The notification for `event`, with the ticket as rt-relay read it after the change.
pub fn notification(
    txn: &RtTransaction,
    event: &TicketEvent,
    ticket: &Ticket,
    rt: &RtTicket,
    message: Option<&str>,
    now: DateTime<Utc>,
) -> Notification {
    let change = match event {
        TicketEvent::StatusChanged(c) | TicketEvent::Updated(c) => Some(c.clone()),
        _ => None,
    };
    let excerpt = if event.has_message() { message.and_then(excerpt) } else { None };
    Notification {
        id: notification_id(txn, event),
        kind: event.kind().to_owned(),
        ticket: TicketSummary {
            owner: Some(rt.owner.clone()),
            priority: Some(rt.priority),
            ..TicketSummary::of(ticket)
        },
        created_at: now,
        rt_transaction_id: Some(txn.id),
        actor: Some(txn.creator.clone()),
        occurred_at: Some(txn.created),
        change,
        excerpt,
    }
}

/// The first [`EXCERPT_CHARS`] characters of a message, whitespace runs folded to one
/// space (a notification is a one-line preview, not the message); `None` when empty.
pub fn excerpt(text: &str) -> Option<String> {
    let mut out = String::new();
    let mut count = 0;
    for word in text.split_whitespace() {
        for c in (if out.is_empty() { None } else { Some(' ') }).into_iter().chain(word.chars()) {
            if count == EXCERPT_CHARS {
                out.push('…');
                return Some(out);
            }
            out.push(c);
            count += 1;
        }
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn txn(kind: &str, field: &str, old: &str, new: &str) -> RtTransaction {
        RtTransaction {
            id: 44,
            ticket_id: 7,
            kind: kind.into(),
            field: field.into(),
            old_value: old.into(),
            new_value: new.into(),
            creator: "alice".into(),
            created: DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default(),
        }
    }

    fn change(field: &str, old: &str, new: &str) -> FieldChange {
        FieldChange { field: field.into(), old: old.into(), new: new.into() }
    }

    fn status(old: &str, new: &str) -> Option<TicketEvent> {
        Some(TicketEvent::StatusChanged(change("status", old, new)))
    }

    fn updated(field: &str, old: &str, new: &str) -> Option<TicketEvent> {
        Some(TicketEvent::Updated(change(field, old, new)))
    }

    #[test]
    fn every_catalogue_entry_maps_from_its_rt_transaction() {
        let cases = [
            (txn("Create", "", "", ""), Some(TicketEvent::Created)),
            (txn("Status", "Status", "new", "open"), status("new", "open")),
            (txn("Set", "Status", "open", "resolved"), status("open", "resolved")),
            (txn("Set", "Owner", "Nobody", "root"), updated("owner", "Nobody", "root")),
            (txn("Take", "Owner", "Nobody", "bob"), updated("owner", "Nobody", "bob")),
            (txn("Give", "Owner", "bob", "carol"), updated("owner", "bob", "carol")),
            (txn("Set", "Queue", "General", "Support"), updated("queue", "General", "Support")),
            (txn("Set", "Subject", "a", "b"), updated("subject", "a", "b")),
            (txn("Set", "Priority", "0", "5"), updated("priority", "0", "5")),
            (txn("Correspond", "", "", ""), Some(TicketEvent::Replied)),
            (txn("Comment", "", "", ""), Some(TicketEvent::Commented)),
        ];
        for (t, want) in cases {
            assert_eq!(classify(&t), want, "{} {}", t.kind, t.field);
        }
    }

    #[test]
    fn rt_bookkeeping_is_not_an_event() {
        for (kind, field) in [
            ("EmailRecord", ""),
            ("CommentEmailRecord", ""),
            // RT records an owner change twice; the watcher half is not a second event.
            ("SetWatcher", "Owner"),
            ("AddWatcher", "Requestor"),
            ("CustomField", ""),
            ("AddLink", "DependsOn"),
            ("Set", "TimeWorked"),
        ] {
            assert_eq!(classify(&txn(kind, field, "", "")), None, "{kind} {field}");
        }
    }

    #[test]
    fn created_shares_the_post_paths_id_and_the_rest_use_the_transaction() {
        let create = txn("Create", "", "", "");
        assert_eq!(notification_id(&create, &TicketEvent::Created), "ticket-7-created");
        let reply = txn("Correspond", "", "", "");
        assert_eq!(notification_id(&reply, &TicketEvent::Replied), "rt-txn-44");
    }

    fn ticket() -> (Ticket, RtTicket) {
        let at = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let t = Ticket {
            id: 7,
            title: "Printer".into(),
            description: "d".into(),
            status: "open".into(),
            queue: "General".into(),
            requestor: None,
            created_at: at,
            updated_at: at,
            rt_url: "https://rt/Ticket/Display.html?id=7".into(),
        };
        let rt = RtTicket {
            id: 7,
            subject: "Printer".into(),
            status: "open".into(),
            queue: "General".into(),
            owner: "root".into(),
            priority: 3,
            requestors: vec![],
            created: at,
        };
        (t, rt)
    }

    #[test]
    fn notification_json_carries_transaction_actor_change_and_summary() {
        let (t, rt) = ticket();
        let status = txn("Status", "Status", "new", "open");
        let event = classify(&status).unwrap();
        let n = notification(&status, &event, &t, &rt, Some("ignored"), Utc::now());
        let json = serde_json::to_value(&n).unwrap();
        assert_eq!(json["id"], "rt-txn-44");
        assert_eq!(json["type"], "ticket.status_changed");
        assert_eq!(json["rt_transaction_id"], 44);
        assert_eq!(json["actor"], "alice");
        assert_eq!(json["occurred_at"], "2027-01-15T08:00:00Z");
        assert_eq!(json["change"], serde_json::json!({"field":"status","old":"new","new":"open"}));
        assert_eq!(json["ticket"]["owner"], "root");
        assert_eq!(json["ticket"]["priority"], 3);
        assert!(json.get("excerpt").is_none(), "a status change carries no message");
        let back: Notification = serde_json::from_value(json).unwrap();
        assert_eq!(back, n);
    }

    #[test]
    fn replies_carry_a_bounded_one_line_excerpt() {
        let (t, rt) = ticket();
        let reply = txn("Correspond", "", "", "");
        let long = format!("Hello,\n\n  the {} end", "é".repeat(400));
        let n = notification(&reply, &TicketEvent::Replied, &t, &rt, Some(&long), Utc::now());
        let e = n.excerpt.unwrap();
        assert!(e.starts_with("Hello, the éé"), "{e}");
        assert_eq!(e.chars().count(), EXCERPT_CHARS + 1, "bounded, plus the ellipsis");
        assert!(e.ends_with('…'));
        assert_eq!(excerpt(" \n\t "), None);
        assert_eq!(excerpt("short\nreply"), Some("short reply".into()));
        let n = notification(&reply, &TicketEvent::Commented, &t, &rt, None, Utc::now());
        assert_eq!(n.excerpt, None);
    }
}
