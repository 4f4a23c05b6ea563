//! The handlers, one file per area of spec/api.md.

pub mod integration;
pub mod keys;
pub mod pages;
pub mod session;
