//! Staff permissions: the grammar of `granted_permissions` and THE one function that decides
//! what a staff user (admin, support, team lead) may do.
//!
//! # Grammar
//!
//! A grant is `resource:action:scope`, exactly three segments separated by `:`:
//!
//! - `resource` and `action` are `*` or a name matching `[a-z][a-z0-9_]*`, at most 64 characters;
//! - `scope` is `*` (everything), `team` or `own`; nothing else.
//!
//! No whitespace, no empty segment, no extra colon, no upper case, no `*` inside a name
//! (`ord*` is malformed, not a prefix pattern). `*:*:*` grants everything.
//! [`Grant::from_str`](std::str::FromStr) and [`parse_grants`] enforce this; call them when
//! permissions are written, so that a malformed string is rejected with a message saying what
//! is wrong instead of silently granting nothing. [`Grant`]'s `Display` is the canonical text,
//! and a valid string is already canonical: `s.parse::<Grant>()?.to_string() == s`.
//!
//! # Matching
//!
//! A route declares the [`Permission`] it needs, e.g. `Permission::new("traders", "update")`.
//! A grant covers it when its resource segment is `*` or exactly equal to the needed resource,
//! and its action segment is `*` or exactly equal to the needed action. "Exactly" means byte
//! equality: `order` does not cover `orders`, `orders` does not cover `order`, and there is no
//! case folding (upper case is malformed anyway).
//!
//! [`allowed_scope`] returns the widest scope over all covering grants, or `None` when no grant
//! covers the permission (deny). Grants only ever add: there are no deny rules, so adding a
//! grant can widen the result but never narrow it.
//!
//! # Scope
//!
//! The scope filters the route's SQL query: [`Scope::Own`] = the caller's own rows,
//! [`Scope::Team`] = rows of the caller's team, [`Scope::All`] = every row. They are ordered
//! `Own < Team < All`, so "widest" is simply the maximum.
//!
//! # Stored data
//!
//! The database CHECK `permissions_are_valid()` is looser than this grammar (it accepts other
//! scopes such as `store_1` and names of any length), so a row written around the API can hold
//! a grant this module rejects. Fail closed: if a stored list does not parse, treat the user as
//! having no permissions.

use std::fmt;
use std::str::FromStr;

/// Longest resource or action name, in characters (names are ASCII, so also in bytes).
pub const MAX_NAME_LEN: usize = 64;

/// How much of a rejected string an error message repeats; enough for any valid grant
/// (64 + 1 + 64 + 1 + 4 characters), short enough that a huge input does not flood logs.
const MAX_SHOWN: usize = 140;

/// Which rows a permission reaches. Ordered `Own < Team < All`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// `own`: rows belonging to the caller.
    Own,
    /// `team`: rows belonging to the caller's team.
    Team,
    /// `*`: every row.
    All,
}

impl Scope {
    /// The text of the scope segment: `own`, `team` or `*`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scope::Own => "own",
            Scope::Team => "team",
            Scope::All => "*",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The resource or action part of a grant.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// `*`: any resource or action.
    Any,
    /// A name matching `[a-z][a-z0-9_]*`, at most [`MAX_NAME_LEN`] characters.
    Name(String),
}

impl Segment {
    /// Exact match only: a name never covers a longer, shorter or differently cased name.
    fn covers(&self, needed: &str) -> bool {
        match self {
            Segment::Any => true,
            Segment::Name(name) => name == needed,
        }
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Segment::Any => f.write_str("*"),
            Segment::Name(name) => f.write_str(name),
        }
    }
}

/// One validated `resource:action:scope` string. Only obtainable by parsing, so every `Grant`
/// in the program is well-formed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Grant {
    resource: Segment,
    action: Segment,
    scope: Scope,
}

impl Grant {
    pub fn resource(&self) -> &Segment {
        &self.resource
    }

    pub fn action(&self) -> &Segment {
        &self.action
    }

    pub fn scope(&self) -> Scope {
        self.scope
    }

    fn covers(&self, needed: Permission) -> bool {
        self.resource.covers(needed.resource) && self.action.covers(needed.action)
    }
}

impl FromStr for Grant {
    type Err = PermissionError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split(':');
        let (Some(resource), Some(action), Some(scope), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(PermissionError::SegmentCount { grant: shown(s) });
        };
        Ok(Grant {
            resource: parse_segment(s, "resource", resource)?,
            action: parse_segment(s, "action", action)?,
            scope: parse_scope(s, scope)?,
        })
    }
}

impl fmt::Display for Grant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.resource, self.action, self.scope)
    }
}

/// What a route needs, e.g. `Permission::new("traders", "update")`. Declare it as a `const` so
/// that a misspelt name fails the build.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Permission {
    pub resource: &'static str,
    pub action: &'static str,
}

impl Permission {
    /// # Panics
    ///
    /// If `resource` or `action` is not a valid name (`*` included: a route needs something
    /// concrete). Such a permission could only ever be allowed by a wildcard grant, which would
    /// hide the typo; in a `const` this is a compile error instead of a panic.
    pub const fn new(resource: &'static str, action: &'static str) -> Self {
        assert!(
            is_name(resource) && resource.len() <= MAX_NAME_LEN,
            "Permission resource must match [a-z][a-z0-9_]* and be at most 64 characters"
        );
        assert!(
            is_name(action) && action.len() <= MAX_NAME_LEN,
            "Permission action must match [a-z][a-z0-9_]* and be at most 64 characters"
        );
        Permission { resource, action }
    }
}

impl fmt::Display for Permission {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.resource, self.action)
    }
}

/// Why a permission string was rejected. The messages are meant for the admin who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PermissionError {
    #[error("`{grant}` must have three segments resource:action:scope")]
    SegmentCount { grant: String },
    #[error("`{grant}` has an empty {part}")]
    EmptySegment { grant: String, part: &'static str },
    #[error(
        "`{grant}` has {part} `{segment}`, which must be `*` or start with a lower-case letter \
         followed by lower-case letters, digits or `_`"
    )]
    InvalidName {
        grant: String,
        part: &'static str,
        segment: String,
    },
    #[error("`{grant}` has {len} characters in its {part}, more than the limit of 64")]
    NameTooLong {
        grant: String,
        part: &'static str,
        len: usize,
    },
    #[error("`{grant}` has scope `{scope}`, which must be `*`, `team` or `own`")]
    InvalidScope { grant: String, scope: String },
    /// From [`parse_grants`]: which entry of the list is wrong (0-based).
    #[error("granted_permissions[{index}]: {error}")]
    Entry {
        index: usize,
        error: Box<PermissionError>,
    },
}

/// Parses a whole `granted_permissions` list. The first malformed entry wins, and the error
/// says which one it is.
pub fn parse_grants(list: &[String]) -> Result<Vec<Grant>, PermissionError> {
    list.iter()
        .enumerate()
        .map(|(index, text)| {
            text.parse().map_err(|error| PermissionError::Entry {
                index,
                error: Box::new(error),
            })
        })
        .collect()
}

/// The widest scope in which `grants` allow `needed`, or None.
///
/// A grant counts when its resource is `*` or exactly `needed.resource`, and its action is `*`
/// or exactly `needed.action`; the answer is the maximum scope over those grants.
pub fn allowed_scope(grants: &[Grant], needed: Permission) -> Option<Scope> {
    grants
        .iter()
        .filter(|grant| grant.covers(needed))
        .map(|grant| grant.scope)
        .max()
}

fn parse_segment(grant: &str, part: &'static str, text: &str) -> Result<Segment, PermissionError> {
    if text.is_empty() {
        return Err(PermissionError::EmptySegment {
            grant: shown(grant),
            part,
        });
    }
    if text == "*" {
        return Ok(Segment::Any);
    }
    // Characters before length, so that a long non-ASCII name is reported for what is really
    // wrong with it (and the length below is then both bytes and characters).
    if !is_name(text) {
        return Err(PermissionError::InvalidName {
            grant: shown(grant),
            part,
            segment: shown(text),
        });
    }
    if text.len() > MAX_NAME_LEN {
        return Err(PermissionError::NameTooLong {
            grant: shown(grant),
            part,
            len: text.len(),
        });
    }
    Ok(Segment::Name(text.to_owned()))
}

fn parse_scope(grant: &str, text: &str) -> Result<Scope, PermissionError> {
    match text {
        "*" => Ok(Scope::All),
        "team" => Ok(Scope::Team),
        "own" => Ok(Scope::Own),
        "" => Err(PermissionError::EmptySegment {
            grant: shown(grant),
            part: "scope",
        }),
        _ => Err(PermissionError::InvalidScope {
            grant: shown(grant),
            scope: shown(text),
        }),
    }
}

/// `[a-z][a-z0-9_]*`, ignoring length. `const` so that [`Permission::new`] can use it.
const fn is_name(text: &str) -> bool {
    let bytes = text.as_bytes();
    if bytes.is_empty() || !bytes[0].is_ascii_lowercase() {
        return false;
    }
    let mut i = 1;
    while i < bytes.len() {
        let b = bytes[i];
        if !(b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
            return false;
        }
        i += 1;
    }
    true
}

/// Rejected input as an error message repeats it: control and invisible characters escaped
/// (so a message cannot forge log lines), cut short after [`MAX_SHOWN`] characters.
fn shown(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_SHOWN)
        .flat_map(char::escape_debug)
        .collect();
    if text.chars().nth(MAX_SHOWN).is_some() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use Scope::{All, Own, Team};

    fn grants(list: &[&str]) -> Vec<Grant> {
        list.iter()
            .map(|text| text.parse().unwrap_or_else(|e| panic!("{text}: {e}")))
            .collect()
    }

    /// (grants, needed resource, needed action, expected widest scope)
    #[rustfmt::skip]
    const MATCHING: &[(&[&str], &str, &str, Option<Scope>)] = &[
        // Exact names, each scope.
        (&["orders:read:own"], "orders", "read", Some(Own)),
        (&["orders:read:team"], "orders", "read", Some(Team)),
        (&["orders:read:*"], "orders", "read", Some(All)),
        // Wildcard in each position and in combinations.
        (&["*:read:own"], "orders", "read", Some(Own)),
        (&["*:read:own"], "traders", "read", Some(Own)),
        (&["*:read:own"], "orders", "update", None),
        (&["orders:*:team"], "orders", "update", Some(Team)),
        (&["orders:*:team"], "orders", "read", Some(Team)),
        (&["orders:*:team"], "traders", "read", None),
        (&["orders:read:*"], "orders", "update", None),
        (&["orders:read:*"], "traders", "read", None),
        (&["*:*:own"], "orders", "read", Some(Own)),
        (&["*:*:team"], "disputes", "resolve", Some(Team)),
        (&["*:read:*"], "traders", "read", Some(All)),
        (&["*:read:*"], "traders", "update", None),
        (&["orders:*:*"], "orders", "cancel", Some(All)),
        (&["orders:*:*"], "merchants", "cancel", None),
        (&["*:*:*"], "orders", "read", Some(All)),
        (&["*:*:*"], "x", "y", Some(All)),
        // No prefix or suffix tricks, in either direction, for resource and action.
        (&["order:read:*"], "orders", "read", None),
        (&["orders:read:*"], "order", "read", None),
        (&["orders:read:*"], "orders_archive", "read", None),
        (&["orders_archive:read:*"], "orders", "read", None),
        (&["orders:read:*"], "orders", "read_all", None),
        (&["orders:read_all:*"], "orders", "read", None),
        (&["orders:rea:*"], "orders", "read", None),
        (&["orders:read:*"], "orders", "rea", None),
        (&["orders:read:*"], "read", "orders", None),
        // Empty list denies.
        (&[], "orders", "read", None),
        // Maximum over several covering grants, in any order.
        (&["orders:read:own", "orders:read:team"], "orders", "read", Some(Team)),
        (&["orders:read:team", "orders:read:own"], "orders", "read", Some(Team)),
        (&["orders:read:own", "*:*:*"], "orders", "read", Some(All)),
        (&["*:*:own", "orders:read:team"], "orders", "read", Some(Team)),
        (&["*:*:own", "orders:read:team"], "traders", "read", Some(Own)),
        (&["orders:*:own", "*:read:team", "orders:read:own"], "orders", "read", Some(Team)),
        (&["orders:*:own", "*:read:team"], "orders", "update", Some(Own)),
        (&["orders:*:own", "*:read:team"], "traders", "read", Some(Team)),
        (&["orders:*:own", "*:read:team"], "traders", "update", None),
        // Grants that do not cover the permission do not count, however wide.
        (&["orders:read:own", "traders:read:*"], "orders", "read", Some(Own)),
        (&["orders:update:*", "orders:read:own"], "orders", "read", Some(Own)),
        (&["order:read:*", "orders:read:team"], "orders", "read", Some(Team)),
        // Duplicates are harmless.
        (&["orders:read:team", "orders:read:team"], "orders", "read", Some(Team)),
        // Digits and underscores in names.
        (&["store_api_keys:rotate_v2:own"], "store_api_keys", "rotate_v2", Some(Own)),
        (&["a1:b2:team"], "a1", "b2", Some(Team)),
    ];

    #[test]
    fn matching_table() {
        for &(list, resource, action, expected) in MATCHING {
            let needed = Permission::new(resource, action);
            assert_eq!(
                allowed_scope(&grants(list), needed),
                expected,
                "{list:?} allowing {needed}"
            );
        }
    }

    /// (input, the exact error message)
    #[rustfmt::skip]
    const MALFORMED: &[(&str, &str)] = &[
        ("order:read", "`order:read` must have three segments resource:action:scope"),
        ("orders", "`orders` must have three segments resource:action:scope"),
        ("", "`` must have three segments resource:action:scope"),
        ("orders:read:*:x", "`orders:read:*:x` must have three segments resource:action:scope"),
        ("orders:read:*:", "`orders:read:*:` must have three segments resource:action:scope"),
        ("*:*:*:*", "`*:*:*:*` must have three segments resource:action:scope"),
        ("orders::read:*", "`orders::read:*` must have three segments resource:action:scope"),
        ("orders:read:", "`orders:read:` has an empty scope"),
        (":read:*", "`:read:*` has an empty resource"),
        ("orders::*", "`orders::*` has an empty action"),
        ("::", "`::` has an empty resource"),
        (
            " orders:read:*",
            "` orders:read:*` has resource ` orders`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "orders:re ad:*",
            "`orders:re ad:*` has action `re ad`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        ("orders:read:* ", "`orders:read:* ` has scope `* `, which must be `*`, `team` or `own`"),
        (
            "orders:read:\town",
            "`orders:read:\\town` has scope `\\town`, which must be `*`, `team` or `own`",
        ),
        (
            "Orders:read:*",
            "`Orders:read:*` has resource `Orders`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "orders:Read:*",
            "`orders:Read:*` has action `Read`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        ("orders:read:Team", "`orders:read:Team` has scope `Team`, which must be `*`, `team` or `own`"),
        ("orders:read:all", "`orders:read:all` has scope `all`, which must be `*`, `team` or `own`"),
        ("orders:read:store_1", "`orders:read:store_1` has scope `store_1`, which must be `*`, `team` or `own`"),
        ("orders:read:**", "`orders:read:**` has scope `**`, which must be `*`, `team` or `own`"),
        (
            "ord*:read:*",
            "`ord*:read:*` has resource `ord*`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "orders:re*:*",
            "`orders:re*:*` has action `re*`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "**:read:*",
            "`**:read:*` has resource `**`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "1orders:read:*",
            "`1orders:read:*` has resource `1orders`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "_orders:read:*",
            "`_orders:read:*` has resource `_orders`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "order-s:read:*",
            "`order-s:read:*` has resource `order-s`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "ordérs:read:*",
            "`ordérs:read:*` has resource `ordérs`, which must be `*` or start with a lower-case \
             letter followed by lower-case letters, digits or `_`",
        ),
        (
            "orders:read:оwn",
            "`orders:read:оwn` has scope `оwn`, which must be `*`, `team` or `own`",
        ),
        ("orders;read;*", "`orders;read;*` must have three segments resource:action:scope"),
    ];

    #[test]
    fn malformed_table() {
        for &(input, message) in MALFORMED {
            match input.parse::<Grant>() {
                Ok(grant) => panic!("{input:?} parsed as {grant}"),
                Err(e) => assert_eq!(e.to_string(), message, "{input:?}"),
            }
        }
    }

    #[test]
    fn name_length_limit() {
        let max = "a".repeat(64);
        let over = "a".repeat(65);
        for ok in [format!("{max}:read:*"), format!("orders:{max}:own")] {
            assert_eq!(ok.parse::<Grant>().map(|g| g.to_string()), Ok(ok.clone()));
        }
        assert_eq!(
            format!("{over}:read:*").parse::<Grant>(),
            Err(PermissionError::NameTooLong {
                grant: format!("{over}:read:*"),
                part: "resource",
                len: 65,
            })
        );
        assert_eq!(
            format!("orders:{over}:own")
                .parse::<Grant>()
                .map_err(|e| e.to_string()),
            Err(format!(
                "`orders:{over}:own` has 65 characters in its action, more than the limit of 64"
            ))
        );
    }

    #[test]
    fn long_input_is_cut_short_in_messages() {
        let huge = "x".repeat(10_000);
        let message = huge.parse::<Grant>().map_err(|e| e.to_string());
        assert_eq!(
            message,
            Err(format!(
                "`{}…` must have three segments resource:action:scope",
                "x".repeat(MAX_SHOWN)
            ))
        );
    }

    #[test]
    fn parse_grants_names_the_first_bad_entry() {
        let list: Vec<String> = ["orders:read:*", "order:read", "orders:read:nope"]
            .map(String::from)
            .to_vec();
        let error = parse_grants(&list).map_err(|e| e.to_string());
        assert_eq!(
            error,
            Err(
                "granted_permissions[1]: `order:read` must have three segments \
                 resource:action:scope"
                    .to_owned()
            )
        );
        assert_eq!(parse_grants(&[]), Ok(vec![]));
        let ok: Vec<String> = vec!["*:*:*".into(), "orders:read:own".into()];
        assert_eq!(parse_grants(&ok), Ok(grants(&["*:*:*", "orders:read:own"])));
    }

    #[test]
    fn scope_order() {
        assert!(Own < Team && Team < All);
        assert_eq!([All, Own, Team].iter().max(), Some(&All));
        assert_eq!(
            [All, Own, Team].map(|s| s.to_string()),
            ["*", "own", "team"]
        );
    }

    #[test]
    fn accessors() {
        let grant: Grant = "orders:*:team".parse().unwrap();
        assert_eq!(grant.resource(), &Segment::Name("orders".into()));
        assert_eq!(grant.action(), &Segment::Any);
        assert_eq!(grant.scope(), Team);
    }

    #[test]
    #[should_panic(expected = "Permission resource")]
    fn permission_rejects_bad_resource() {
        let _ = Permission::new("Orders", "read");
    }

    #[test]
    #[should_panic(expected = "Permission action")]
    fn permission_rejects_wildcard_action() {
        let _ = Permission::new("orders", "*");
    }

    // --- Property tests ---

    const NAME: &str = "[a-z][a-z0-9_]{0,63}";

    /// Names from a small pool (so that grants and permissions often collide, including the
    /// prefix pairs) mixed with arbitrary valid names.
    fn name() -> impl Strategy<Value = String> {
        prop_oneof![
            prop::sample::select(vec!["order", "orders", "read", "reads", "a", "a_1"])
                .prop_map(String::from),
            NAME,
        ]
    }

    fn segment() -> impl Strategy<Value = Segment> {
        prop_oneof![1 => Just(Segment::Any), 3 => name().prop_map(Segment::Name)]
    }

    fn scope() -> impl Strategy<Value = Scope> {
        prop_oneof![Just(Own), Just(Team), Just(All)]
    }

    fn grant() -> impl Strategy<Value = Grant> {
        (segment(), segment(), scope()).prop_map(|(resource, action, scope)| Grant {
            resource,
            action,
            scope,
        })
    }

    /// Permission holds `&'static str`; leaking a few bytes per case is fine in a test.
    fn permission() -> impl Strategy<Value = Permission> {
        (name(), name()).prop_map(|(r, a)| Permission::new(r.leak(), a.leak()))
    }

    proptest! {
        #[test]
        fn display_then_parse_round_trips(grant in grant()) {
            let text = grant.to_string();
            prop_assert_eq!(text.parse::<Grant>(), Ok(grant));
        }

        #[test]
        fn everything_grant_allows_everything(needed in permission()) {
            let all = grants(&["*:*:*"]);
            prop_assert_eq!(allowed_scope(&all, needed), Some(All));
        }

        #[test]
        fn adding_a_grant_never_narrows(
            mut list in prop::collection::vec(grant(), 0..6),
            extra in grant(),
            needed in permission(),
        ) {
            let before = allowed_scope(&list, needed);
            list.push(extra);
            // `None < Some(_)`, so this also says an allowed permission stays allowed.
            prop_assert!(allowed_scope(&list, needed) >= before);
        }

        #[test]
        fn exact_grant_allows_exactly_its_permission(
            own in permission(),
            other in permission(),
            scope in scope(),
        ) {
            let grant: Grant = format!("{own}:{scope}").parse().unwrap();
            prop_assert_eq!(allowed_scope(std::slice::from_ref(&grant), own), Some(scope));
            if other != own {
                prop_assert_eq!(allowed_scope(&[grant], other), None);
            }
        }

        #[test]
        fn parser_never_panics(text in any::<String>()) {
            // Valid input is canonical, so whatever parses must print back unchanged.
            if let Ok(grant) = text.parse::<Grant>() {
                prop_assert_eq!(grant.to_string(), text);
            }
        }

        #[test]
        fn parser_never_panics_near_valid(text in "[a-zA-Z0-9_*: \t.é-]{0,150}") {
            if let Ok(grant) = text.parse::<Grant>() {
                prop_assert_eq!(grant.to_string(), text);
            }
        }
    }
}
