//! Roles, ordered from least to most powerful so checks read `role >= Role::Editor`.

use serde::{Deserialize, Serialize};

macro_rules! role_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(rename_all = "snake_case")]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [&'static str] = &[$($text),+];
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }
            pub fn parse(text: &str) -> Option<Self> {
                match text { $($text => Some($name::$variant),)+ _ => None }
            }
        }
    };
}

role_enum!(
    /// A user's role in an organization.
    OrgRole { Viewer = "viewer", Member = "member", Admin = "admin", Owner = "owner" }
);
role_enum!(
    /// A user's role in a workspace.
    WorkspaceRole { Viewer = "viewer", Editor = "editor", Admin = "admin" }
);
role_enum!(
    /// A user's role in the whole installation.
    SystemRole { User = "user", Admin = "admin" }
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_order_by_power() {
        assert!(OrgRole::Owner > OrgRole::Admin && OrgRole::Member > OrgRole::Viewer);
        assert!(WorkspaceRole::Admin > WorkspaceRole::Editor);
        assert_eq!(OrgRole::parse("member"), Some(OrgRole::Member));
        assert_eq!(OrgRole::parse("root"), None);
        assert_eq!(WorkspaceRole::Editor.as_str(), "editor");
    }
}
