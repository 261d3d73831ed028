//! Functions the schema calls, registered on every connection Ceneca opens: SQLite keeps
//! no code, so a trigger or view that calls one fails to prepare on a connection without
//! it ("no such function"). Tools opening the file another way must call
//! [`register_functions`] before they write messages or read the full-text index.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use crate::packing;

/// Registers `ceneca_unpack(content_packed)`: the text of a packed message body (see
/// [`crate::packing`]). The full-text index reads packed bodies through it (migration
/// 0013), so a packed body keeps its words, its snippets and its deletes; plain bodies
/// are read as they are, without a call.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "ceneca_unpack",
        1,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let frame = ctx.get_raw(0).as_blob().map_err(|_| {
                rusqlite::Error::UserFunctionError("ceneca_unpack takes a packed body".into())
            })?;
            packing::unpack(frame).map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        },
    )
}
