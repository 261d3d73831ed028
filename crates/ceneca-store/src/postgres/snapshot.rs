//! A PostgreSQL database as a logical export, and back: the database file of a backup
//! taken on PostgreSQL (`ceneca backup create`), and its restore into a new database.
//!
//! The export is every table of the schema (but the migrations' own and the vector
//! outbox, which the rows' triggers fill again) as `COPY … TO STDOUT` text, read in one
//! `REPEATABLE READ` transaction, so it is one consistent state while writes go on. Its
//! form is psql's (`COPY t (cols) FROM stdin;`, the rows, `\.`), parents before children,
//! so `psql -f` loads it too. A restore loads it in one transaction into a database this
//! binary migrated to the same schema version, with no data of its own, with the tables'
//! own triggers off (the rows are loaded as they were, derived columns included); the
//! statements run are built from the database's catalog, never taken from the file.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use ceneca_domain::audit::ChainHead;
use sqlx::Row;
use sqlx::postgres::{PgConnection, PgPool};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio_stream::StreamExt;

use super::backend;
use crate::{Result, StoreError};

/// The first line of an export this binary writes and reads.
const HEADER: &str = "-- ceneca logical export 1";

/// Tables a restore fills by itself, or that are not data: the migrations, the vector
/// outbox, and the authentication counter (the migration seeds it; it only tells running
/// servers when what they keep of callers is out of date, and a restored database has
/// none running on it yet).
const LEFT_OUT: [&str; 3] = ["ceneca_migrations", "vector_outbox", "auth_generation"];

/// A table as the export copies it: its columns (generated ones are computed again).
struct Table {
    name: String,
    columns: Vec<String>,
}

impl Table {
    fn list(&self) -> String {
        self.columns
            .iter()
            .map(|c| quote(c))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

fn quote(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// The tables of the current schema, each after those it references.
async fn tables(conn: &mut PgConnection) -> Result<Vec<Table>> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') \
         AND NOT c.relispartition ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    let names: BTreeSet<String> = names
        .into_iter()
        .filter(|n| !LEFT_OUT.contains(&n.as_str()))
        .collect();
    let edges: Vec<(String, String)> = sqlx::query(
        "SELECT child.relname::text, parent.relname::text FROM pg_constraint k \
         JOIN pg_class child ON child.oid = k.conrelid \
         JOIN pg_class parent ON parent.oid = k.confrelid \
         JOIN pg_namespace n ON n.oid = k.connamespace \
         WHERE k.contype = 'f' AND n.nspname = current_schema()",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    let mut order = Vec::new();
    for name in in_reference_order(&names, &edges)? {
        let columns: Vec<String> = sqlx::query_scalar(
            "SELECT a.attname::text FROM pg_attribute a \
             JOIN pg_class c ON c.oid = a.attrelid \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname = current_schema() AND c.relname = $1 \
             AND a.attnum > 0 AND NOT a.attisdropped AND a.attgenerated = '' \
             ORDER BY a.attnum",
        )
        .bind(&name)
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
        order.push(Table { name, columns });
    }
    Ok(order)
}

/// `names` ordered so each comes after the tables it references (a table referencing
/// itself is loaded in one statement, whose checks run at its end).
fn in_reference_order(names: &BTreeSet<String>, edges: &[(String, String)]) -> Result<Vec<String>> {
    let mut waiting: BTreeMap<&str, BTreeSet<&str>> = names
        .iter()
        .map(|n| (n.as_str(), BTreeSet::new()))
        .collect();
    for (child, parent) in edges {
        if child != parent
            && names.contains(parent)
            && let Some(parents) = waiting.get_mut(child.as_str())
        {
            parents.insert(parent.as_str());
        }
    }
    let mut order = Vec::new();
    while !waiting.is_empty() {
        let ready: Vec<&str> = waiting
            .iter()
            .filter(|(_, parents)| parents.is_empty())
            .map(|(n, _)| *n)
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Config(format!(
                "the tables {:?} reference each other: they cannot be exported in an order that loads",
                waiting.keys().collect::<Vec<_>>()
            )));
        }
        for name in ready {
            waiting.remove(name);
            for parents in waiting.values_mut() {
                parents.remove(name);
            }
            order.push(name.to_owned());
        }
    }
    Ok(order)
}

async fn schema_version(conn: &mut PgConnection) -> Result<i64> {
    sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM ceneca_migrations")
        .fetch_one(&mut *conn)
        .await
        .map_err(backend)
}

async fn chain_head(conn: &mut PgConnection) -> Result<ChainHead> {
    let row = sqlx::query("SELECT sequence, hash FROM audit_log ORDER BY sequence DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await
        .map_err(backend)?;
    Ok(
        match row.map(|r| (r.get::<i64, _>(0), r.get::<Option<String>, _>(1))) {
            Some((sequence, Some(mac))) => ChainHead { sequence, mac },
            _ => ChainHead::genesis(),
        },
    )
}

/// Reads the next line of `input` into `line`, its `\n` kept; `false` at the end.
async fn next_line(
    input: &mut tokio::io::BufReader<tokio::fs::File>,
    line: &mut Vec<u8>,
    path: &std::path::Path,
) -> Result<bool> {
    line.clear();
    Ok(input
        .read_until(b'\n', line)
        .await
        .map_err(|e| io(path, e))?
        > 0)
}

fn io(path: &std::path::Path, e: std::io::Error) -> StoreError {
    StoreError::Backend(format!("{}: {e}", path.display()))
}

/// Writes the export to the new file `path`; answers the audit chain's end it holds.
pub(super) async fn export(pool: &PgPool, path: PathBuf) -> Result<ChainHead> {
    let mut tx = pool.begin().await.map_err(backend)?;
    sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    let file = tokio::fs::File::create_new(&path)
        .await
        .map_err(|e| io(&path, e))?;
    let mut out = tokio::io::BufWriter::with_capacity(1 << 20, file);
    let version = schema_version(&mut tx).await?;
    let tables = tables(&mut tx).await?;
    let head = chain_head(&mut tx).await?;
    out.write_all(format!("{HEADER}\n-- schema {version}\n").as_bytes())
        .await
        .map_err(|e| io(&path, e))?;
    for table in &tables {
        out.write_all(
            format!(
                "COPY {} ({}) FROM stdin;\n",
                quote(&table.name),
                table.list()
            )
            .as_bytes(),
        )
        .await
        .map_err(|e| io(&path, e))?;
        let statement = format!("COPY {} ({}) TO STDOUT", quote(&table.name), table.list());
        let mut rows = tx.copy_out_raw(&statement).await.map_err(backend)?;
        while let Some(piece) = rows.next().await {
            out.write_all(&piece.map_err(backend)?)
                .await
                .map_err(|e| io(&path, e))?;
        }
        drop(rows);
        out.write_all(b"\\.\n").await.map_err(|e| io(&path, e))?;
    }
    out.flush().await.map_err(|e| io(&path, e))?;
    out.into_inner()
        .sync_all()
        .await
        .map_err(|e| io(&path, e))?;
    tx.rollback().await.map_err(backend)?;
    Ok(head)
}

/// Refuses a database a restore must not touch, before anything (a migration) changes
/// it: one with tables but no Ceneca schema (another application's), or one whose
/// tables hold rows.
pub(super) async fn check_restore_target(pool: &PgPool) -> Result<()> {
    let mut conn = pool.acquire().await.map_err(backend)?;
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname::text FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') ORDER BY c.relname",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(backend)?;
    if !names.iter().any(|n| n == "ceneca_migrations") {
        // Not migrated by Ceneca: it must hold nothing at all of anyone's — no
        // relation, function or type in any schema of its own.
        let foreign: Vec<String> = sqlx::query_scalar(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c \
             JOIN pg_namespace n ON n.oid = c.relnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND n.nspname NOT LIKE 'pg_temp%' \
             UNION ALL SELECT n.nspname || '.' || p.proname || '()' FROM pg_proc p \
             JOIN pg_namespace n ON n.oid = p.pronamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             UNION ALL SELECT n.nspname || '.' || t.typname FROM pg_type t \
             JOIN pg_namespace n ON n.oid = t.typnamespace \
             WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') \
             AND n.nspname NOT LIKE 'pg_toast%' AND t.typtype IN ('e', 'd', 'r', 'm') \
             ORDER BY 1 LIMIT 5",
        )
        .fetch_all(&mut *conn)
        .await
        .map_err(backend)?;
        if foreign.is_empty() {
            return Ok(());
        }
        return Err(StoreError::Config(format!(
            "the database holds what is not Ceneca's ({}): restore into a new, empty database",
            foreign.join(", ")
        )));
    }
    for name in names.iter().filter(|n| !LEFT_OUT.contains(&n.as_str())) {
        let has_rows: bool =
            sqlx::query_scalar(&format!("SELECT EXISTS (SELECT 1 FROM {})", quote(name)))
                .fetch_one(&mut *conn)
                .await
                .map_err(backend)?;
        if has_rows {
            return Err(StoreError::Config(format!(
                "the database already holds data (table {name}): restore into a new, empty database"
            )));
        }
    }
    Ok(())
}

/// Loads the export at `path` into this database, which must be at the export's schema
/// version and hold no data; answers the audit chain's end it loaded. All or nothing.
pub(super) async fn import(pool: &PgPool, path: PathBuf) -> Result<ChainHead> {
    let refused = |why: String| StoreError::Config(why);
    let file = tokio::fs::File::open(&path)
        .await
        .map_err(|e| io(&path, e))?;
    let mut input = tokio::io::BufReader::with_capacity(1 << 20, file);
    let mut line = Vec::new();
    let mut tx = pool.begin().await.map_err(backend)?;
    let version = schema_version(&mut tx).await?;
    let tables = tables(&mut tx).await?;
    let expected = format!("{HEADER}\n");
    if !next_line(&mut input, &mut line, &path).await? || line != expected.as_bytes() {
        return Err(refused(
            "the backup's database is not a Ceneca logical export".into(),
        ));
    }
    next_line(&mut input, &mut line, &path).await?;
    let theirs = std::str::from_utf8(&line)
        .ok()
        .and_then(|l| l.strip_prefix("-- schema "))
        .and_then(|v| v.trim_end().parse::<i64>().ok());
    if theirs != Some(version) {
        return Err(refused(format!(
            "the backup was taken at schema version {}, this database is at {version}: restore it with the binary that took it",
            theirs.map_or("?".into(), |v| v.to_string())
        )));
    }
    for table in &tables {
        let has_rows: bool = sqlx::query_scalar(&format!(
            "SELECT EXISTS (SELECT 1 FROM {})",
            quote(&table.name)
        ))
        .fetch_one(&mut *tx)
        .await
        .map_err(backend)?;
        if has_rows {
            return Err(refused(format!(
                "the database already holds data (table {}): restore into a new, empty database",
                table.name
            )));
        }
    }
    // The rows as they were: no trigger of ours runs on them (the full-text trigger
    // would empty a compressed message's words; the outbox's would queue every
    // embedding, which the restore reindexes anyway). Constraint checks still run.
    for table in &tables {
        sqlx::query(&format!(
            "ALTER TABLE {} DISABLE TRIGGER USER",
            quote(&table.name)
        ))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    let by_statement: BTreeMap<String, &Table> = tables
        .iter()
        .map(|t| {
            (
                format!("COPY {} ({}) FROM stdin;\n", quote(&t.name), t.list()),
                t,
            )
        })
        .collect();
    let mut loaded = BTreeSet::new();
    while next_line(&mut input, &mut line, &path).await? {
        let statement = String::from_utf8_lossy(&line).into_owned();
        let Some(table) = by_statement.get(&statement) else {
            return Err(refused(format!(
                "the backup's database copies {:?}, which is not a table of this schema as it is",
                statement.trim_end()
            )));
        };
        if !loaded.insert(table.name.clone()) {
            return Err(refused(format!(
                "the backup's database copies {} twice",
                table.name
            )));
        }
        let mut copy = tx
            .copy_in_raw(&format!(
                "COPY {} ({}) FROM STDIN",
                quote(&table.name),
                table.list()
            ))
            .await
            .map_err(backend)?;
        let mut chunk = Vec::with_capacity(1 << 20);
        let mut ended = false;
        while next_line(&mut input, &mut line, &path).await? {
            if line == b"\\.\n" {
                ended = true;
                break;
            }
            chunk.extend_from_slice(&line);
            if chunk.len() >= 1 << 20 {
                copy.send(std::mem::take(&mut chunk))
                    .await
                    .map_err(backend)?;
            }
        }
        if !ended {
            let _ = copy.abort("the export ends midway").await;
            return Err(refused(format!(
                "the backup's database ends inside table {}",
                table.name
            )));
        }
        if !chunk.is_empty() {
            copy.send(chunk).await.map_err(backend)?;
        }
        copy.finish().await.map_err(backend)?;
    }
    if let Some(missing) = tables.iter().find(|t| !loaded.contains(&t.name)) {
        return Err(refused(format!(
            "the backup's database has no copy of table {}",
            missing.name
        )));
    }
    for table in &tables {
        sqlx::query(&format!(
            "ALTER TABLE {} ENABLE TRIGGER USER",
            quote(&table.name)
        ))
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    // Identity and serial columns go on after the largest value loaded.
    let sequences: Vec<(String, String)> = sqlx::query(
        "SELECT c.relname::text, a.attname::text FROM pg_attribute a \
         JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace \
         WHERE n.nspname = current_schema() AND a.attnum > 0 AND NOT a.attisdropped \
         AND pg_get_serial_sequence(quote_ident(c.relname), a.attname) IS NOT NULL",
    )
    .fetch_all(&mut *tx)
    .await
    .map_err(backend)?
    .iter()
    .map(|r| (r.get(0), r.get(1)))
    .collect();
    for (table, column) in sequences {
        if LEFT_OUT.contains(&table.as_str()) {
            continue;
        }
        sqlx::query(&format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(MAX({c}), 1), MAX({c}) IS NOT NULL) FROM {t}",
            c = quote(&column),
            t = quote(&table)
        ))
        .bind(quote(&table))
        .bind(&column)
        .execute(&mut *tx)
        .await
        .map_err(backend)?;
    }
    // The counter jumps past any value a server may keep callers at: a restore takes
    // sessions and memberships back in time, and a node still running on this database
    // must read each caller again. Each change adds one, so the counter stays below the
    // microseconds since the last jump; the time now is past all it ever held.
    sqlx::query(
        "UPDATE auth_generation SET generation = GREATEST(generation + 1,
             (EXTRACT(EPOCH FROM clock_timestamp()) * 1000000)::BIGINT)",
    )
    .execute(&mut *tx)
    .await
    .map_err(backend)?;
    let head = chain_head(&mut tx).await?;
    tx.commit().await.map_err(backend)?;
    Ok(head)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_come_after_those_they_reference() {
        let names: BTreeSet<String> = ["a", "b", "c", "d"].map(String::from).into();
        let edges = [("c", "b"), ("b", "a"), ("c", "c"), ("d", "elsewhere")]
            .map(|(x, y)| (x.to_owned(), y.to_owned()));
        assert_eq!(
            in_reference_order(&names, &edges).unwrap(),
            ["a", "d", "b", "c"]
        );
        let cycle = [("a", "b"), ("b", "a")].map(|(x, y)| (x.to_owned(), y.to_owned()));
        assert!(in_reference_order(&names, &cycle).is_err());
    }
}
