//! The handlers, one file per area of spec/api.md.

pub mod github;
pub mod integration;
pub mod keys;
pub mod pages;
pub mod session;
