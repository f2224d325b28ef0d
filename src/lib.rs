//! depot: the image service of a NAS. See DESIGN.md for the map; data flows
//! `api → image → transfer → registry → store`.

pub mod digest;
pub mod fsutil;
pub mod reference;
pub mod store;

#[cfg(test)]
pub mod testutil;
pub mod platform;
pub mod registry;
pub mod transfer;
pub mod image;
pub mod http;
pub mod logger;
pub mod progress;
pub mod sysdb;
pub mod api;
pub mod config;
pub mod cli;
pub mod daemon;
