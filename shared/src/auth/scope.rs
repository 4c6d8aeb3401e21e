//! Scopes: what a key may do. Which scope each route needs is a column of the routes table
//! (`crate::routes`); [`required_scope`] reads it by API Gateway route key.

use std::{collections::BTreeSet, fmt};

/// What a key may do. Each keyed route needs exactly one scope ([`required_scope`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `tickets:write`: `POST /tickets`.
    TicketsWrite,
    /// `tickets:read`: `GET /tickets`, `GET /tickets/{id}`.
    TicketsRead,
    /// `notifications:read`: `GET /notifications` and the WebSocket API (`$connect`).
    NotificationsRead,
    /// `tickets:requestor`: `POST /tickets` may name a `requestor` (whom RT mails).
    TicketsRequestor,
}

impl Scope {
    /// Every scope.
    pub const ALL: [Scope; 4] = [
        Scope::TicketsWrite,
        Scope::TicketsRead,
        Scope::NotificationsRead,
        Scope::TicketsRequestor,
    ];

    /// The scope's name, e.g. `tickets:write`.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::TicketsWrite => "tickets:write",
            Scope::TicketsRead => "tickets:read",
            Scope::NotificationsRead => "notifications:read",
            Scope::TicketsRequestor => crate::tenant::REQUESTOR_SCOPE,
        }
    }

    /// The scope with this name.
    pub fn parse(name: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Parses a comma-separated scope list (`tickets:read,notifications:read`), or `all`.
pub fn parse_scopes(list: &str) -> Result<BTreeSet<Scope>, String> {
    if list.trim() == "all" {
        return Ok(Scope::ALL.into_iter().collect());
    }
    let mut scopes = BTreeSet::new();
    for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let scope = Scope::parse(name).ok_or_else(|| {
            let known: Vec<&str> = Scope::ALL.iter().map(|s| s.as_str()).collect();
            format!("unknown scope {name:?} (known: {}, or all)", known.join(", "))
        })?;
        scopes.insert(scope);
    }
    if scopes.is_empty() {
        return Err("no scopes given".into());
    }
    Ok(scopes)
}

/// Space-separated scope names, as they travel in the authorizer context.
pub fn scopes_text(scopes: &BTreeSet<Scope>) -> String {
    scopes.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(" ")
}

/// The scope a route needs, by API Gateway route key (`POST /tickets`, `$connect`, ...),
/// from the routes table. `None` for a route key not in the table and for a public route:
/// the authorizer refuses those (fail closed; public routes never reach it).
pub fn required_scope(route_key: &str) -> Option<Scope> {
    crate::routes::required_scope(route_key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all() -> BTreeSet<Scope> {
        Scope::ALL.into_iter().collect()
    }

    #[test]
    fn scopes_parse_and_print() {
        assert_eq!(parse_scopes("tickets:read, notifications:read").unwrap().len(), 2);
        assert_eq!(parse_scopes("all").unwrap(), all());
        assert!(parse_scopes("tickets:admin").unwrap_err().contains("tickets:admin"));
        assert!(parse_scopes(" , ").is_err());
        assert_eq!(
            scopes_text(&all()),
            "tickets:write tickets:read notifications:read tickets:requestor"
        );
    }

    #[test]
    fn every_route_of_both_apis_needs_a_scope_and_others_need_the_impossible() {
        assert_eq!(required_scope("POST /tickets"), Some(Scope::TicketsWrite));
        assert_eq!(required_scope("GET /tickets"), Some(Scope::TicketsRead));
        assert_eq!(required_scope("GET /tickets/{id}"), Some(Scope::TicketsRead));
        assert_eq!(required_scope("GET /notifications"), Some(Scope::NotificationsRead));
        assert_eq!(required_scope("$connect"), Some(Scope::NotificationsRead));
        assert_eq!(required_scope("DELETE /tickets"), None);
        assert_eq!(required_scope("$default"), None);
    }
}
