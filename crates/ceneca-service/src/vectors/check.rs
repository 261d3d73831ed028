//! The drift check (`ceneca reindex --vectors --check`): compares every collection of the
//! index with SQL, the truth, point by point, and says what differs.

use std::collections::HashSet;

use uuid::Uuid;

use super::indexer::to_point;
use super::{COLLECTIONS, vector_error};
use crate::Services;
use crate::error::{Result, ServiceError};

/// How many ids of each kind of difference a report lists (the counts are whole).
const LISTED: usize = 20;
/// Points read from SQL, and asked of the index, at a time.
const PAGE: u32 = 500;

/// What one collection of the index holds against SQL.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CollectionDrift {
    pub collection: String,
    /// Embedding rows in SQL.
    pub sql_points: u64,
    /// Points in the index.
    pub index_points: u64,
    /// In SQL, not in the index.
    pub missing: u64,
    /// In both, but the index holds another vector, workspace or source.
    pub stale: u64,
    /// In the index, not in SQL (deleted rows the index still returns).
    pub extra: u64,
    /// Written while the check ran: on their way to the index, not drift.
    pub pending: u64,
    /// Up to 20 ids of each difference, to look into.
    pub examples: Vec<(DriftKind, Uuid)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriftKind {
    Missing,
    Stale,
    Extra,
}

impl DriftKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Stale => "stale",
            Self::Extra => "extra",
        }
    }
}

impl CollectionDrift {
    /// Whether the index differs from SQL.
    pub fn drifted(&self) -> bool {
        self.missing + self.stale + self.extra > 0
    }
}

/// Whether the index's point says what SQL's does: the same payload, and the same vector
/// as a cosine index keeps it (Qdrant normalises a vector when it stores it, in 32-bit
/// floats: a vector whose length is zero, or too large for them, is kept as it is or
/// made zeros), compared within rounding; or else the same direction, in 64-bit floats.
fn same(sql: &ceneca_vector::Point, index: &ceneca_vector::Point) -> bool {
    if sql.workspace_id != index.workspace_id
        || sql.source_id != index.source_id
        || sql.vector.len() != index.vector.len()
    {
        return false;
    }
    if sql.vector == index.vector {
        return true;
    }
    let near = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .all(|(x, y)| x == y || (x - y).abs() <= 1e-5 + 1e-4 * x.abs().max(y.abs()))
    };
    let length2: f32 = sql.vector.iter().map(|x| x * x).sum();
    let stored: Vec<f32> = if length2 < f32::EPSILON || (length2 - 1.0).abs() <= 1e-6 {
        sql.vector.clone()
    } else {
        let length = length2.sqrt();
        sql.vector.iter().map(|x| x / length).collect()
    };
    if near(&stored, &index.vector) {
        return true;
    }
    let unit = |v: &[f32]| -> Option<Vec<f64>> {
        let length = v.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
        (length > 0.0 && length.is_finite())
            .then(|| v.iter().map(|x| f64::from(*x) / length).collect())
    };
    match (unit(&sql.vector), unit(&index.vector)) {
        (Some(a), Some(b)) => a.iter().zip(&b).map(|(x, y)| x * y).sum::<f64>() >= 0.999_9,
        _ => false,
    }
}

impl Services {
    /// Compares every collection of the index with SQL. It holds the indexer's lease (a
    /// running indexer stands by) and first applies what waits in the outbox, so what
    /// differs afterwards is drift; a point written while it runs is counted as pending.
    pub async fn check_vectors(&self) -> Result<Vec<CollectionDrift>> {
        let v = self.vectors()?.clone();
        let mut lease = self.rebuild_lease().await?;
        let result = async {
            // The outbox is applied to the index it feeds, and only to it: an index of this
            // folder's own that the database does not name (another node's is) would take
            // entries the serving one then never sees.
            if let Some(id) = v.index.identity() {
                match self.store.vector_index_owner().await? {
                    Some((owner, fed)) if owner != id || fed != v.index.fed_mark() => {
                        return Err(ServiceError::conflict(format!(
                            "this data folder's vector index ({id}) is not the one this \
                             database's outbox feeds ({owner}), or is behind it (a copied or \
                             restored folder): check the serving node's data folder (with \
                             its server stopped), or start serve here, which rebuilds this \
                             index before it serves"
                        )));
                    }
                    Some(_) => {}
                    None => self.mark_round(&v).await?,
                }
            }
            while self.index_round(&v).await? {}
            let mut out = Vec::new();
            for (collection, _) in COLLECTIONS {
                out.push(self.check_collection(&v, collection).await?);
            }
            Ok(out)
        }
        .await;
        let _ = lease.release().await;
        result
    }

    async fn check_collection(
        &self,
        v: &super::Vectors,
        collection: &str,
    ) -> Result<CollectionDrift> {
        let mut report = CollectionDrift {
            collection: collection.to_owned(),
            ..Default::default()
        };
        // Every id the index holds; what SQL also holds is struck off below.
        let mut held = HashSet::new();
        let mut from = None;
        loop {
            let (ids, next) = v
                .index
                .ids(collection, from, 1000)
                .await
                .map_err(vector_error)?;
            held.extend(ids);
            match next {
                Some(n) => from = Some(n),
                None => break,
            }
        }
        report.index_points = held.len() as u64;
        let mut differ: Vec<(DriftKind, Uuid)> = Vec::new();
        let mut after = None;
        loop {
            let page = self
                .store
                .embeddings_page(collection.to_owned(), after, PAGE)
                .await?;
            let Some(last) = page.last() else { break };
            after = Some(last.id);
            report.sql_points += page.len() as u64;
            let ids: Vec<Uuid> = page.iter().map(|p| p.id).collect();
            let found = v
                .index
                .retrieve(collection, ids)
                .await
                .map_err(vector_error)?;
            let found: std::collections::HashMap<Uuid, ceneca_vector::Point> =
                found.into_iter().map(|p| (p.id, p)).collect();
            for row in page {
                held.remove(&row.id);
                let id = row.id;
                let sql = to_point(collection, row);
                match found.get(&id) {
                    None => differ.push((DriftKind::Missing, id)),
                    Some(index) if !same(&sql, index) => differ.push((DriftKind::Stale, id)),
                    Some(_) => {}
                }
            }
        }
        differ.extend(held.into_iter().map(|id| (DriftKind::Extra, id)));
        // A write made while the check ran is in the outbox: on its way, not drift.
        let mut pending = HashSet::new();
        for chunk in differ.chunks(1000) {
            let ids = chunk.iter().map(|(_, id)| *id).collect();
            pending.extend(
                self.store
                    .vector_outbox_holds(collection.to_owned(), ids)
                    .await?,
            );
        }
        for (kind, id) in differ {
            if pending.contains(&id) {
                report.pending += 1;
                continue;
            }
            match kind {
                DriftKind::Missing => report.missing += 1,
                DriftKind::Stale => report.stale += 1,
                DriftKind::Extra => report.extra += 1,
            }
            if report.examples.len() < LISTED * 3
                && report.examples.iter().filter(|(k, _)| *k == kind).count() < LISTED
            {
                report.examples.push((kind, id));
            }
        }
        Ok(report)
    }
}
