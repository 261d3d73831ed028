//! Query-string parameters, parsed once into types: each parameter has one grammar, and a
//! bad one is refused with its name (never ignored, never a 500).

use ceneca_domain::Deleted;
use ceneca_domain::validate::parse_time_str;
use time::OffsetDateTime;
use uuid::Uuid;

use crate::error::ParamError;

/// Items in a page when the client does not say.
pub const DEFAULT_LIMIT: u32 = 50;
/// The most items a page holds.
pub const MAX_LIMIT: u32 = 200;

/// Hits in a search page when the client does not say, and the most it may ask for.
pub const SEARCH_DEFAULT_LIMIT: u32 = 20;
pub const SEARCH_MAX_LIMIT: u32 = 100;

/// The parameters of a list request (`GET /threads?limit=20&sort=-updated_at&pinned=true`).
#[derive(Debug, Clone, PartialEq)]
pub struct ListParams {
    pub limit: u32,
    /// Opaque: the `next_cursor` of the previous page (checked by the service).
    pub cursor: Option<String>,
    /// A sortable field, `-` in front for descending.
    pub sort: Option<String>,
    /// `None` when not asked: entities without soft delete refuse the parameter.
    pub deleted: Option<Deleted>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    /// Every other parameter: an equality filter on a field the model marks filterable
    /// (checked against the entity by the service).
    pub filters: Vec<(String, String)>,
}

impl Default for ListParams {
    fn default() -> Self {
        Self {
            limit: DEFAULT_LIMIT,
            cursor: None,
            sort: None,
            deleted: None,
            created_after: None,
            created_before: None,
            filters: Vec::new(),
        }
    }
}

impl ListParams {
    /// The parameters every list has; the rest are filters.
    pub const KNOWN: [&'static str; 7] = [
        "limit",
        "cursor",
        "sort",
        "deleted",
        "include_deleted",
        "created_after",
        "created_before",
    ];

    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ParamError> {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        refuse_repeats(&pairs)?;
        let mut p = ListParams::default();
        for (k, v) in pairs {
            if let Some(deleted) = Deleted::from_param(&k, &v) {
                p.deleted = Some(deleted.map_err(|r| ParamError::new(&k, format!("{k} {r}")))?);
                continue;
            }
            match k.as_str() {
                "limit" => p.limit = limit(&v)?,
                "cursor" => p.cursor = Some(v),
                "sort" => p.sort = Some(v),
                "created_after" => p.created_after = Some(time(&k, &v)?),
                "created_before" => p.created_before = Some(time(&k, &v)?),
                _ => p.filters.push((k, v)),
            }
        }
        Ok(p)
    }
}

/// Which kinds of rows a full-text search covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SearchKind {
    #[default]
    All,
    Messages,
    Documents,
}

/// `GET /search` parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchParams {
    /// The words to search for, as the user typed them (never query syntax).
    pub q: String,
    pub kind: SearchKind,
    pub workspace_id: Option<Uuid>,
    pub project_id: Option<Uuid>,
    pub thread_id: Option<Uuid>,
    pub author_id: Option<Uuid>,
    pub created_after: Option<OffsetDateTime>,
    pub created_before: Option<OffsetDateTime>,
    /// Search reads live rows or live and deleted ones (`only` has no meaning here).
    pub include_deleted: bool,
    pub limit: u32,
    pub cursor: Option<String>,
}

impl SearchParams {
    pub const KNOWN: [&'static str; 11] = [
        "q",
        "kind",
        "workspace_id",
        "project_id",
        "thread_id",
        "author_id",
        "created_after",
        "created_before",
        "deleted",
        "limit",
        "cursor",
    ];

    pub fn from_pairs(
        pairs: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ParamError> {
        let pairs: Vec<(String, String)> = pairs.into_iter().collect();
        refuse_repeats(&pairs)?;
        let mut q = None;
        let mut p = SearchParams {
            q: String::new(),
            kind: SearchKind::All,
            workspace_id: None,
            project_id: None,
            thread_id: None,
            author_id: None,
            created_after: None,
            created_before: None,
            include_deleted: false,
            limit: SEARCH_DEFAULT_LIMIT,
            cursor: None,
        };
        for (k, v) in pairs {
            match k.as_str() {
                "q" => q = Some(v),
                "kind" => {
                    p.kind = match v.as_str() {
                        "messages" => SearchKind::Messages,
                        "documents" => SearchKind::Documents,
                        "all" => SearchKind::All,
                        _ => {
                            return Err(ParamError::new(
                                "kind",
                                "kind must be messages, documents or all",
                            ));
                        }
                    }
                }
                "workspace_id" => p.workspace_id = Some(uuid(&k, &v)?),
                "project_id" => p.project_id = Some(uuid(&k, &v)?),
                "thread_id" => p.thread_id = Some(uuid(&k, &v)?),
                "author_id" => p.author_id = Some(uuid(&k, &v)?),
                "created_after" => p.created_after = Some(time(&k, &v)?),
                "created_before" => p.created_before = Some(time(&k, &v)?),
                "deleted" => {
                    p.include_deleted = match Deleted::from_param(&k, &v) {
                        Some(Ok(Deleted::Exclude)) => false,
                        Some(Ok(Deleted::Include)) => true,
                        _ => {
                            return Err(ParamError::new(
                                "deleted",
                                "deleted must be exclude or include",
                            ));
                        }
                    }
                }
                "limit" => p.limit = limit_up_to(&v, SEARCH_MAX_LIMIT)?,
                "cursor" => p.cursor = Some(v),
                other => return Err(ParamError::unknown(other, &Self::KNOWN)),
            }
        }
        p.q = q.ok_or_else(|| ParamError::new("q", "q is required: the words to search for"))?;
        Ok(p)
    }
}

/// `?wait=true|false` of vector writes: answer only once the index applied the write.
pub fn wait_param(pairs: &[(String, String)]) -> Result<bool, ParamError> {
    refuse_repeats(pairs)?;
    let mut wait = false;
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("wait", "true") => wait = true,
            ("wait", "false") => wait = false,
            ("wait", _) => return Err(ParamError::new("wait", "wait must be true or false")),
            (other, _) => return Err(ParamError::unknown(other, &["wait"])),
        }
    }
    Ok(wait)
}

/// `?erase=` alone (deleting an account): `true` erases it for good, `false` (the
/// default) puts it in the bin.
pub fn erase_param(pairs: &[(String, String)]) -> Result<bool, ParamError> {
    refuse_repeats(pairs)?;
    let mut erase = false;
    for (k, v) in pairs {
        match (k.as_str(), v.as_str()) {
            ("erase", "true") => erase = true,
            ("erase", "false") => erase = false,
            ("erase", _) => return Err(ParamError::new("erase", "erase must be true or false")),
            (other, _) => return Err(ParamError::unknown(other, &["erase"])),
        }
    }
    Ok(erase)
}

/// `?deleted=` alone (reading one row): `exclude`, `include` or `only`.
pub fn deleted_param(pairs: &[(String, String)]) -> Result<Deleted, ParamError> {
    refuse_repeats(pairs)?;
    let mut deleted = Deleted::Exclude;
    for (k, v) in pairs {
        deleted = match Deleted::from_param(k, v) {
            Some(Ok(d)) => d,
            Some(Err(reason)) => return Err(ParamError::new(k, format!("{k} {reason}"))),
            None => return Err(ParamError::unknown(k, &["deleted"])),
        };
    }
    Ok(deleted)
}

/// A parameter given twice is refused, not resolved to one of its values: `limit=5&limit=500`
/// has no one meaning, and a filter repeated a thousand times made SQLite refuse the query
/// (a 500). `deleted` and `include_deleted` are one parameter.
pub fn refuse_repeats(pairs: &[(String, String)]) -> Result<(), ParamError> {
    let mut seen = std::collections::HashSet::with_capacity(pairs.len());
    for (k, _) in pairs {
        let name = if k == "include_deleted" { "deleted" } else { k };
        if !seen.insert(name) {
            return Err(ParamError::new(k, format!("{k} is given more than once")));
        }
    }
    Ok(())
}

/// For routes without query parameters: any one is refused rather than ignored.
pub fn no_params(pairs: &[(String, String)]) -> Result<(), ParamError> {
    match pairs.first() {
        Some((k, _)) => Err(ParamError::new(
            k,
            format!("unknown parameter '{k}'; this endpoint takes none"),
        )),
        None => Ok(()),
    }
}

fn limit(text: &str) -> Result<u32, ParamError> {
    limit_up_to(text, MAX_LIMIT)
}

/// A limit is refused, not clamped, when out of range: a client asking for 500 learns
/// the bound instead of silently getting fewer.
fn limit_up_to(text: &str, max: u32) -> Result<u32, ParamError> {
    text.parse::<u32>()
        .ok()
        .filter(|n| (1..=max).contains(n))
        .ok_or_else(|| {
            ParamError::new("limit", format!("limit must be an integer from 1 to {max}"))
        })
}

fn time(name: &str, text: &str) -> Result<OffsetDateTime, ParamError> {
    parse_time_str(text).map_err(|reason| ParamError::new(name, format!("{name} {reason}")))
}

fn uuid(name: &str, text: &str) -> Result<Uuid, ParamError> {
    Uuid::parse_str(text).map_err(|_| ParamError::new(name, format!("{name} must be a UUID")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn list_parameters_are_typed_and_the_rest_are_filters() {
        let p = ListParams::from_pairs(pairs(&[
            ("limit", "20"),
            ("deleted", "only"),
            ("created_after", "2026-01-01T00:00:00+02:00"),
            ("pinned", "true"),
        ]))
        .unwrap();
        assert_eq!(p.limit, 20);
        assert_eq!(p.deleted, Some(Deleted::Only));
        assert_eq!(p.created_after.unwrap().offset(), time::UtcOffset::UTC);
        assert_eq!(p.filters, pairs(&[("pinned", "true")]));
        assert_eq!(
            ListParams::from_pairs(pairs(&[])).unwrap().limit,
            DEFAULT_LIMIT
        );
    }

    #[test]
    fn bad_list_parameters_name_themselves() {
        for (k, v) in [
            ("limit", "0"),
            ("limit", "201"),
            ("limit", "x"),
            ("deleted", "all"),
            ("include_deleted", "yes"),
            ("created_before", "yesterday"),
        ] {
            let e = ListParams::from_pairs(pairs(&[(k, v)])).unwrap_err();
            assert_eq!(e.field, k, "{k}={v}");
        }
    }

    #[test]
    fn search_parameters_require_q_and_refuse_unknown_ones() {
        let p = SearchParams::from_pairs(pairs(&[("q", "hello"), ("kind", "messages")])).unwrap();
        assert_eq!((p.q.as_str(), p.kind), ("hello", SearchKind::Messages));
        assert_eq!(SearchParams::from_pairs(pairs(&[])).unwrap_err().field, "q");
        let e = SearchParams::from_pairs(pairs(&[("q", "a"), ("qq", "b")])).unwrap_err();
        assert_eq!(e.field, "qq");
        let e = SearchParams::from_pairs(pairs(&[("q", "a"), ("deleted", "only")])).unwrap_err();
        assert_eq!(e.field, "deleted");
        let e = SearchParams::from_pairs(pairs(&[("q", "a"), ("thread_id", "1")])).unwrap_err();
        assert_eq!(e.field, "thread_id");
    }

    #[test]
    fn one_deleted_grammar_for_lists_reads_and_search() {
        assert_eq!(
            deleted_param(&pairs(&[("include_deleted", "true")])).unwrap(),
            Deleted::Include
        );
        assert_eq!(
            ListParams::from_pairs(pairs(&[("include_deleted", "true")]))
                .unwrap()
                .deleted,
            Some(Deleted::Include)
        );
        assert!(
            SearchParams::from_pairs(pairs(&[("q", "a"), ("deleted", "include")]))
                .unwrap()
                .include_deleted
        );
        assert_eq!(deleted_param(&pairs(&[("x", "1")])).unwrap_err().field, "x");
        assert!(wait_param(&pairs(&[("wait", "yes")])).is_err());
        // Attack finding: a repeated parameter had no one meaning (and a thousand copies of
        // a filter made SQLite refuse the query).
        for repeated in [
            &[("limit", "5"), ("limit", "500")][..],
            &[("pinned", "true"), ("pinned", "true")][..],
            &[("deleted", "only"), ("include_deleted", "false")][..],
        ] {
            let e = ListParams::from_pairs(pairs(repeated)).unwrap_err();
            assert_eq!(e.field, repeated[1].0);
        }
        assert!(SearchParams::from_pairs(pairs(&[("q", "a"), ("q", "b")])).is_err());
        assert!(wait_param(&pairs(&[("wait", "true"), ("wait", "false")])).is_err());
        assert_eq!(
            no_params(&pairs(&[("bogus", "1")])).unwrap_err().field,
            "bogus"
        );
        assert!(wait_param(&pairs(&[("wait", "true")])).unwrap());
    }
}
