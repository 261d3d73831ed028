//! The thumbnail queue and its records, written once for both engines over [`Exec`].
//!
//! The queue is served fairly: a round takes the oldest waiting image of each account
//! with images waiting, the accounts in turn, so one account's thousand uploads hold up
//! another's by one image a round, not by the thousand. A thumbnail counts against its
//! workspace's quota while it is kept, like the file it shows.

use ceneca_domain::schema::{Field, Kind, field};
use ceneca_domain::{Record, Value, model};
use uuid::Uuid;

use crate::Result;
use crate::ops::Exec;
use crate::sql::{self, COUNT, Sql};
use crate::usage::UsageDeltas;

/// A thumbnail made and kept as a blob: its key, and its size in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MadeThumbnail {
    pub key: String,
    pub bytes: i64,
}

/// Up to `limit` attachments waiting for a thumbnail, each with its account: the
/// oldest image of each account, the accounts taken in turn after `after` (the last one
/// served), so each waits at most `accounts / limit` rounds, however many images the
/// others have. An account is whoever holds the workspace's quota: its organization, or
/// its owner (a workspace with neither is an account of its own).
///
/// Read through the partial index `attachments__thumbnails_pending (workspace_id,
/// updated_at, id)`: the workspaces with images waiting are found by skipping from one
/// to the next (`ws`, one index seek each), then each one's oldest (`heads`), then the
/// oldest of each account's (`ranked`). A round costs a seek per workspace waiting,
/// never a pass over every image waiting.
pub(crate) async fn waiting<E: Exec>(
    exec: &mut E,
    after: Option<Uuid>,
    limit: u32,
) -> Result<Vec<(Uuid, Record)>> {
    static TURNS: [Field; 2] = [field("id", Kind::Uuid), field("account", Kind::Uuid)];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let order = match after {
        Some(after) => {
            let after = sql.bind(d, Value::Id(after), Kind::Uuid);
            format!("CASE WHEN account > {after} THEN 0 ELSE 1 END, account")
        }
        None => "account".to_owned(),
    };
    let account = "COALESCE(w.organization_id, w.owner_user_id, w.id)";
    sql.text = format!(
        "WITH RECURSIVE ws(id) AS (
            SELECT (SELECT workspace_id FROM attachments WHERE thumbnail = 'pending'
                    ORDER BY workspace_id LIMIT 1)
            UNION ALL
            SELECT (SELECT a.workspace_id FROM attachments a
                    WHERE a.thumbnail = 'pending' AND a.workspace_id > ws.id
                    ORDER BY a.workspace_id LIMIT 1)
            FROM ws WHERE ws.id IS NOT NULL
         ),
         heads AS (
            SELECT (SELECT b.id FROM attachments b
                    WHERE b.thumbnail = 'pending' AND b.workspace_id = ws.id
                    ORDER BY b.updated_at, b.id LIMIT 1) AS id
            FROM ws WHERE ws.id IS NOT NULL
         ),
         ranked AS (
            SELECT a.id, {account} AS account,
                   ROW_NUMBER() OVER (PARTITION BY {account} ORDER BY a.updated_at, a.id) AS turn
            FROM heads
            JOIN attachments a ON a.id = heads.id
            JOIN workspaces w ON w.id = a.workspace_id
         )
         SELECT id, account FROM ranked WHERE turn = 1 ORDER BY {order} LIMIT {limit}"
    );
    let fields: Vec<&Field> = TURNS.iter().collect();
    let turns: Vec<(Uuid, Uuid)> = exec
        .fetch_columns(&fields, &sql)
        .await?
        .iter()
        .filter_map(|row| Some((row.id()?, row.id_of("account")?)))
        .collect();
    if turns.is_empty() {
        return Ok(Vec::new());
    }
    let d = exec.dialect();
    let mut sql = Sql::default();
    let ids = sql.bind(
        d,
        Value::IdSet(turns.iter().map(|(id, _)| *id).collect()),
        Kind::Uuid,
    );
    sql.text = format!(
        "SELECT {} FROM attachments WHERE {}",
        sql::column_list(&model::ATTACHMENTS),
        d.in_set("id", &ids)
    );
    let mut rows = exec.fetch(&model::ATTACHMENTS, &sql).await?;
    Ok(turns
        .into_iter()
        .filter_map(|(id, account)| {
            let at = rows.iter().position(|row| row.id() == Some(id))?;
            Some((account, rows.swap_remove(at)))
        })
        .collect())
}

/// A thumbnail already made of the blob `storage_key` in `workspace` (the same bytes,
/// uploaded again or to another row): reused rather than decoded again. Never across
/// workspaces: how fast a thumbnail came would tell whether another tenant holds the
/// same file.
pub(crate) async fn of_blob<E: Exec>(
    exec: &mut E,
    storage_key: &str,
    workspace: Uuid,
) -> Result<Option<MadeThumbnail>> {
    static COLUMNS: [Field; 2] = [
        field("thumbnail_key", Kind::Text { max: 500 }),
        field("thumbnail_bytes", COUNT),
    ];
    let d = exec.dialect();
    let mut sql = Sql::default();
    let key = sql.bind(
        d,
        Value::Text(storage_key.to_owned()),
        Kind::Text { max: 500 },
    );
    let workspace = sql.bind(d, Value::Id(workspace), Kind::Uuid);
    sql.text = format!(
        "SELECT thumbnail_key, thumbnail_bytes FROM attachments
         WHERE storage_key = {key} AND workspace_id = {workspace} AND thumbnail = 'ready'
           AND thumbnail_key IS NOT NULL
         LIMIT 1"
    );
    let fields: Vec<&Field> = COLUMNS.iter().collect();
    let rows = exec.fetch_columns(&fields, &sql).await?;
    Ok(rows.first().and_then(|row| {
        Some(MadeThumbnail {
            key: row.get("thumbnail_key")?.as_str()?.to_owned(),
            bytes: row.get("thumbnail_bytes")?.as_int()?,
        })
    }))
}

/// Records where attachment `attachment`'s thumbnail stands, only while it still keeps
/// the file `source_key` and waits: the row when written. A thumbnail kept is counted.
pub(crate) async fn record<E: Exec>(
    exec: &mut E,
    attachment: Uuid,
    source_key: String,
    state: &'static str,
    made: Option<MadeThumbnail>,
    usage: &mut UsageDeltas,
) -> Result<Vec<Record>> {
    let d = exec.dialect();
    let mut sql = Sql::default();
    let state = sql.bind(d, Value::Text(state.to_owned()), Kind::Text { max: 32 });
    let (key, bytes) = match made {
        Some(made) => (Value::Text(made.key), made.bytes),
        None => (Value::Null, 0),
    };
    let key = sql.bind(d, key, Kind::Text { max: 500 });
    let bytes = sql.bind(d, Value::Int(bytes), COUNT);
    let id = sql.bind(d, Value::Id(attachment), Kind::Uuid);
    let source = sql.bind(d, Value::Text(source_key), Kind::Text { max: 500 });
    sql.text = format!(
        "UPDATE attachments SET thumbnail = {state}, thumbnail_key = {key}, thumbnail_bytes = {bytes}
         WHERE id = {id} AND storage_key = {source} AND thumbnail = 'pending'
         RETURNING {}",
        sql::column_list(&model::ATTACHMENTS)
    );
    let rows = exec.fetch(&model::ATTACHMENTS, &sql).await?;
    for row in &rows {
        // While waiting, a row keeps no thumbnail (an upload clears it).
        let mut waiting = row.clone();
        waiting.set("thumbnail_key", Value::Null);
        waiting.set("thumbnail_bytes", Value::Int(0));
        usage.resize(&model::ATTACHMENTS, &waiting, row);
    }
    Ok(rows)
}
