//! depot: the image service of a NAS. See DESIGN.md for the map; data flows
//! `api → image → transfer → registry → store`.

pub mod digest;
pub mod fsutil;
pub mod reference;
pub mod store;

pub mod api;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod http;
pub mod image;
pub mod logger;
pub mod platform;
pub mod progress;
pub mod registry;
pub mod sysdb;
#[cfg(test)]
pub mod testutil;
pub mod transfer;
