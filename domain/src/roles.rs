//! What an operator's API key may do: each role names the routes it opens (DESIGN "Customers,
//! roles and the audit log"); `admin` opens every one.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// An operator's role, as `api_keys.role` stores it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Everything, API keys included.
    Admin,
    /// Creating and changing concerts, reading and cancelling any booking.
    BoxOffice,
    /// Checking tickets in.
    Scanner,
    /// Reading analytics.
    Analyst,
}

impl Role {
    pub const ALL: [Role; 4] = [Role::Admin, Role::BoxOffice, Role::Scanner, Role::Analyst];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Admin => "admin",
            Role::BoxOffice => "box_office",
            Role::Scanner => "scanner",
            Role::Analyst => "analyst",
        }
    }

    /// Whether this role may do what `needed` may.
    pub fn covers(self, needed: Role) -> bool {
        self == Role::Admin || self == needed
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = &'static str;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or("must be admin, box_office, scanner or analyst")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_reads_back_and_only_admin_covers_the_others() {
        for role in Role::ALL {
            assert_eq!(role.as_str().parse::<Role>(), Ok(role));
            assert!(Role::Admin.covers(role));
            assert!(role.covers(role));
        }
        assert!(!Role::Scanner.covers(Role::BoxOffice));
        assert!(!Role::BoxOffice.covers(Role::Admin));
        assert!(!Role::Analyst.covers(Role::Scanner));
        assert!("Admin".parse::<Role>().is_err());
    }
}
