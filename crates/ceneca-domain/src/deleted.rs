//! Which rows of a soft-deleting entity a read sees, and the one grammar clients use to say
//! it (`deleted=exclude|include|only`, and the older `include_deleted=true|false`).

/// Which rows of a soft-deleting entity a read sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Deleted {
    #[default]
    Exclude,
    Include,
    Only,
}

impl Deleted {
    /// The values `deleted=` accepts, in the order documentation lists them.
    pub const VALUES: [&'static str; 3] = ["exclude", "include", "only"];

    pub fn as_str(self) -> &'static str {
        match self {
            Deleted::Exclude => "exclude",
            Deleted::Include => "include",
            Deleted::Only => "only",
        }
    }

    /// Reads one query-string pair if it speaks about deleted rows: `None` when `key` is
    /// another parameter, `Some(Err(reason))` when the value is not one of the grammar's.
    pub fn from_param(key: &str, value: &str) -> Option<Result<Deleted, &'static str>> {
        match key {
            "deleted" => Some(match value {
                "exclude" => Ok(Deleted::Exclude),
                "include" => Ok(Deleted::Include),
                "only" => Ok(Deleted::Only),
                _ => Err("must be exclude, include or only"),
            }),
            "include_deleted" => Some(match value {
                "true" => Ok(Deleted::Include),
                "false" => Ok(Deleted::Exclude),
                _ => Err("must be true or false"),
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_grammar_for_deleted_rows() {
        assert_eq!(
            Deleted::from_param("deleted", "only"),
            Some(Ok(Deleted::Only))
        );
        assert_eq!(
            Deleted::from_param("include_deleted", "true"),
            Some(Ok(Deleted::Include))
        );
        assert_eq!(
            Deleted::from_param("include_deleted", "false"),
            Some(Ok(Deleted::Exclude))
        );
        assert!(matches!(
            Deleted::from_param("deleted", "ONLY"),
            Some(Err(_))
        ));
        assert!(matches!(
            Deleted::from_param("include_deleted", "yes"),
            Some(Err(_))
        ));
        assert_eq!(Deleted::from_param("limit", "5"), None);
        for v in Deleted::VALUES {
            assert_eq!(
                Deleted::from_param("deleted", v).unwrap().unwrap().as_str(),
                v
            );
        }
    }
}
