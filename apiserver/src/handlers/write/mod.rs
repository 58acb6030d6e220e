//! Create, update (PUT) and patch: the write path every object takes.
//!
//! A write is: decode → check the type header → field validation (unknown fields) → typed
//! round trip → server-set metadata (uid, creationTimestamp, generation...) → defaults →
//! validation → an etcd transaction compared on the object's revision. A PUT carrying a stale
//! `resourceVersion` loses the compare and gets 409 Conflict; a PATCH re-reads and re-applies
//! itself instead (the patch, not the whole object, is the client's intent).
//!
//! - [`create`]: POST, and server-side apply of an absent object;
//! - [`update`]: PUT, and the read-modify-write loop PATCH and subresources share;
//! - [`patch`]: the four patch types;
//! - [`decode`] and [`allocation`]: what all three share (the typed decode and its warnings,
//!   422 Invalid; a Service's allocations).

mod allocation;
mod create;
mod decode;
mod patch;
mod update;

pub use create::{create, stamp_new};
pub use decode::add_warnings;
pub use patch::{patch, patch_error};
pub use update::{deletion_complete, update, write_with_retries};
