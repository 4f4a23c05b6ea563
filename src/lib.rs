//! offkey: finds Offset Commerce API keys wherever they hide, checks them offline by their
//! checksum, verifies them against the key service, redacts them from text and rotates exposed
//! ones; and `offkey serve`, the key service itself (an embedded key store behind an HTTP API and
//! the Settings → API Keys page).
//!
//! The folders are the architecture (see `design/architecture.md`): `key` is the format, `rules`
//! the detection rules, `source` where bytes come from, `decode` the views keys hide behind,
//! `scan` turns bytes into findings, `report` findings into bytes, `client` talks to the service,
//! `rotate` is the rotation assistant, `store` and `server` are the service, `cli` the commands.

pub mod cli;
pub mod client;
pub mod decode;
#[doc(hidden)]
pub mod fuzzing;
pub mod key;
pub mod ocr;
pub mod report;
pub mod rotate;
pub mod rules;
pub mod scan;
pub mod server;
pub mod source;
pub mod store;
