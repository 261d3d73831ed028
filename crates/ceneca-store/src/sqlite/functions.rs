//! Functions the schema calls, registered on every connection Ceneca opens: SQLite keeps
//! no code, so a trigger or view that calls one fails to prepare on a connection without
//! it ("no such function"). Tools opening the file another way must call
//! [`register_functions`] before they write messages or read the full-text index.

use rusqlite::Connection;
use rusqlite::functions::FunctionFlags;

use crate::packing;

/// Registers `ceneca_unpack(content, content_packed)`: a message body's text, whether it
/// is stored plain or packed (see [`crate::packing`]). The full-text index reads bodies
/// through it (migration 0013), so a packed body keeps its words and its snippets.
pub fn register_functions(conn: &Connection) -> rusqlite::Result<()> {
    conn.create_scalar_function(
        "ceneca_unpack",
        2,
        FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DETERMINISTIC,
        |ctx| {
            let plain: Option<String> = ctx.get(0)?;
            let frame: Option<Vec<u8>> = ctx.get(1)?;
            packing::text_of(plain.as_deref().unwrap_or(""), frame.as_deref())
                .map_err(|e| rusqlite::Error::UserFunctionError(Box::new(e)))
        },
    )
}
