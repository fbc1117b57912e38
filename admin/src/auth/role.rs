use serde::{Deserialize, Serialize};

/// The five kinds of people who use the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Admin,
    Support,
    TeamLead,
    Trader,
    Merchant,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::Admin,
        Role::Support,
        Role::TeamLead,
        Role::Trader,
        Role::Merchant,
    ];

    /// The spelling used in the database and in URLs (`team_lead`).
    pub fn as_str(&self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::Support => "support",
            Role::TeamLead => "team_lead",
            Role::Trader => "trader",
            Role::Merchant => "merchant",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }

    /// Staff carry `granted_permissions`; traders and merchants act only on their own data.
    pub fn is_staff(&self) -> bool {
        matches!(self, Role::Admin | Role::Support | Role::TeamLead)
    }
}
